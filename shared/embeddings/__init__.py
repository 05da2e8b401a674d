"""Plane AI's embeddings: documents into chunks, chunks into vectors, vectors into an index.

Nothing here imports torch at import time: the registry and the CLI load without the `embeddings`
extra, and only what embeds (model.py) needs it.
"""

"""The embedding settings: a view over the EMBEDDING_* variables of shared/settings.py.

The variables are declared (and documented in the README's generated table) with every other
setting; this view holds only them, checks the combinations the model needs, and can be built
without the rest of the environment being valid for a consumer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from shared.settings import VARIABLES as ALL_VARIABLES
from shared.settings import Settings, Variable

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
VARIABLES: tuple[Variable, ...] = tuple(v for v in ALL_VARIABLES if v.env.startswith("EMBEDDING_"))


@dataclass(frozen=True)
class EmbeddingSettings:
    # No defaults here: they are Settings' (`EmbeddingSettings.from_env({})` has them all).
    embedding_model: str
    embedding_model_name: str
    embedding_device: str
    embedding_dtype: str
    embedding_batch_tokens: int
    embedding_max_batch: int
    embedding_chunk_tokens: int
    embedding_chunk_overlap: int
    embedding_max_chunks: int
    embedding_cpu_threads: int
    embedding_backend: str  # torch, or an ONNX Runtime variant: shared/embeddings/onnx_backend.py
    embedding_cache_dir: str
    embedding_index: str  # which adapter: shared/embeddings/backends.py (with OPENSEARCH_URL)

    @classmethod
    def of(cls, settings: Settings) -> EmbeddingSettings:
        """The EMBEDDING_* part of the process's settings, validated."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls)}
        for name, value in values.items():
            if isinstance(value, str):
                values[name] = value.strip()
        view = cls(**values)
        view.validate()
        return view

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmbeddingSettings:
        """Only the EMBEDDING_* variables of `environ` (default: the process environment) are
        read into the view; a bad value elsewhere is not this view's concern."""
        import os

        env = os.environ if environ is None else environ
        own = {v.env: env[v.env] for v in VARIABLES if v.env in env}
        return cls.of(Settings.from_env(own))

    def validate(self) -> None:
        if self.embedding_device != "auto" and not (
            self.embedding_device == "cpu" or self.embedding_device.startswith("cuda")
        ):
            raise ValueError(f"EMBEDDING_DEVICE={self.embedding_device!r}: auto, cpu, cuda or cuda:N")
        if self.embedding_dtype not in {"auto", "float32", "float16", "bfloat16"}:
            raise ValueError(f"EMBEDDING_DTYPE={self.embedding_dtype!r}: auto, float32, float16 or bfloat16")
        for name in ("embedding_batch_tokens", "embedding_max_batch", "embedding_max_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.upper()} must be at least 1")
        if self.embedding_chunk_tokens < 0 or self.embedding_chunk_overlap < 0:
            raise ValueError("EMBEDDING_CHUNK_TOKENS and EMBEDDING_CHUNK_OVERLAP cannot be negative")
        if self.embedding_chunk_tokens and self.embedding_chunk_overlap >= self.embedding_chunk_tokens:
            raise ValueError("EMBEDDING_CHUNK_OVERLAP must be smaller than EMBEDDING_CHUNK_TOKENS")
        if self.embedding_cpu_threads < 0:
            raise ValueError("EMBEDDING_CPU_THREADS cannot be negative")
        if self.embedding_backend not in BACKENDS:
            raise ValueError(f"EMBEDDING_BACKEND={self.embedding_backend!r}: {', '.join(BACKENDS)}")
        if self.embedding_index.lower() not in {"", "pgvector", "opensearch"}:
            raise ValueError(f"EMBEDDING_INDEX={self.embedding_index!r}: pgvector or opensearch")

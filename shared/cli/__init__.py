"""The `plane-workers` command line."""

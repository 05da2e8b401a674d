"""The common library of plane-workers: settings, runtime, registry and CLI."""

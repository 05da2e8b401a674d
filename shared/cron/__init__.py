"""The job runtime: `plane-workers job NAME` with a lock, a run record, metrics and exit codes."""

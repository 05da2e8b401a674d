"""Database access: the engine, Plane's tables (as Plane defines them) and our own state schema."""

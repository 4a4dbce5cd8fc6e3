"""I/O that gathers facts shared by several checks (one broker connection, one app import)."""

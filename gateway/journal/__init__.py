"""The journal: the store protocol, its SQLite implementation and the state machine."""

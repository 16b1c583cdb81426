"""Listeners, TLS, sessions and framing (docs/protocol.md §1)."""

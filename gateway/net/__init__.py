"""Listeners, TLS, sessions and framing (corplink.md §1)."""

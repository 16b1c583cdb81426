"""Front processes and their channel to the core (docs/architecture.md §1)."""

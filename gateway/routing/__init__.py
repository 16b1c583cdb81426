"""Bank directory, calendars, operating windows, work dates and engine rules (pure functions)."""

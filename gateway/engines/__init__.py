"""The three engines: INTRA, HVPS (one message each) and BEPS (packages)."""

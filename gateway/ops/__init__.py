"""Metrics, structured logs, health endpoints, admin socket and sd_notify."""

"""Simulated counterparties (ERP clients, clearing systems); they speak only the spec."""

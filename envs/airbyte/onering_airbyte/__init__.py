"""Airbyte connections OneRing runs with PyAirbyte (this environment only)."""

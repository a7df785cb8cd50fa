"""PyFlink jobs OneRing launches through Dagster Pipes (this environment only)."""

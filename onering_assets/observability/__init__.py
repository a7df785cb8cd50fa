"""Prometheus metrics read from the Dagster instance, and Grafana dashboards as code."""

"""Reusable check builders: a spec builder per kind and one result builder."""

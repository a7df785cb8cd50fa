"""Features: Feast feature views as assets, computed from Silver, checked, materialized."""

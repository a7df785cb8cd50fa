"""Safe change: what a declaration change does before anything is published (issue 14)."""

"""From SQL and the asset graph to catalog entities and edges (no OpenMetadata import here)."""

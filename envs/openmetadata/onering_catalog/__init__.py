"""OneRing's catalog publisher, run in the separate ``openmetadata`` environment.

It reads the neutral lineage document the main environment writes (``build_document`` in
``onering_assets.lineage.document``) and sends it to OpenMetadata with
``openmetadata-ingestion``'s generated models and client. Nothing in the main environment
imports this package or ``metadata.*``: run it as ``envs/openmetadata/.venv/bin/python -m …``.
"""

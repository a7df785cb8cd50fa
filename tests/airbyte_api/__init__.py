"""A loopback Airbyte API server for the tests of OneRing driving a running instance.

``schemas.json`` holds Airbyte's public API models as JSON Schema, written by
``envs/airbyte/onering_airbyte/api_schemas.py`` from the ``airbyte-api`` package (PyPI),
which Speakeasy generates from Airbyte's OpenAPI spec; ``server.py`` serves the endpoints
OneRing calls and validates every request (and its own responses) against them.
"""

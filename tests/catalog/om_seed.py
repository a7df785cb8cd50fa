"""What a fresh OpenMetadata 2.0.7 server already holds that OneRing's checks may reference.

OpenMetadata seeds its system test definitions at start-up (``provider: system``); these are the
ones a publisher mapping row-count, not-null, uniqueness, range and custom-SQL checks would name.
"""

from __future__ import annotations

from tests.catalog.om_model import KIND_BY_TYPE, quote_name
from tests.catalog.om_store import Json, Store

_TABLE, _COLUMN = "TABLE", "COLUMN"
SYSTEM_TEST_DEFINITIONS: tuple[tuple[str, str, tuple[tuple[str, bool], ...]], ...] = (
    ("tableRowCountToBeBetween", _TABLE, (("minValue", False), ("maxValue", False))),
    ("tableRowCountToEqual", _TABLE, (("value", True),)),
    ("tableColumnCountToEqual", _TABLE, (("columnCount", True),)),
    ("tableCustomSQLQuery", _TABLE, (("sqlExpression", True), ("strategy", False))),
    ("columnValuesToBeNotNull", _COLUMN, ()),
    ("columnValuesToBeUnique", _COLUMN, ()),
    ("columnValuesToBeBetween", _COLUMN, (("minValue", False), ("maxValue", False))),
    ("columnValuesToBeInSet", _COLUMN, (("allowedValues", True),)),
)


def seed_test_definitions(store: Store) -> None:
    """Store OpenMetadata's system test definitions used by OneRing's checks."""
    kind = KIND_BY_TYPE["testDefinition"]
    for name, entity_type, params in SYSTEM_TEST_DEFINITIONS:
        spec: Json = {
            "name": name,
            "description": f"OpenMetadata system test definition {name}.",
            "entityType": entity_type,
            "testPlatforms": ["OpenMetadata"],
            "provider": "system",
            "parameterDefinition": [{"name": p, "required": required} for p, required in params],
        }
        store.upsert(kind, quote_name(name), spec, {})

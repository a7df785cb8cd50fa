"""A strict parser of OpenLineage events: openlineage-python's generated classes, no slack.

The spec's JSON schema is not in ``openlineage-python`` and openlineage.io is unreachable,
so events are parsed back with the package's ``attrs`` classes: each facet resolved from its
``_schemaURL`` to its class, unknown or missing fields and wrong types rejected, the
classes' validators run, and the result must serialize back to the same JSON. Facet keys
and required fields are checked against a table written from the spec's facet files in the
OpenLineage repository (``spec/facets/*.json``).
"""

from __future__ import annotations

import json
import types
import typing
import uuid
from collections.abc import Iterator
from enum import Enum
from typing import Any

import attr
from openlineage.client.event_v2 import RunEvent
from openlineage.client.generated import base
from openlineage.client.serde import Serde

from openlineage.client import generated  # isort: skip


SPEC_FACETS = {
    "dataset": {
        "schema": ("SchemaDatasetFacet", set()),
        "dataSource": ("DatasourceDatasetFacet", set()),
        "documentation": ("DocumentationDatasetFacet", {"description"}),
        "ownership": ("OwnershipDatasetFacet", set()),
        "tags": ("TagsDatasetFacet", set()),
        "columnLineage": ("ColumnLineageDatasetFacet", {"fields"}),
    },
    "output": {"outputStatistics": ("OutputStatisticsOutputDatasetFacet", set())},
    "input": {"dataQualityAssertions": ("DataQualityAssertionsDatasetFacet", {"assertions"})},
    "run": {
        "parent": ("ParentRunFacet", {"run", "job"}),
        "nominalTime": ("NominalTimeRunFacet", {"nominalStartTime"}),
        "processing_engine": ("ProcessingEngineRunFacet", {"version"}),
        "errorMessage": ("ErrorMessageRunFacet", {"message", "programmingLanguage"}),
        "tags": ("TagsRunFacet", {"tags"}),  # the client's own version tag
    },
    "job": {
        "sql": ("SQLJobFacet", {"query"}),
        "jobType": ("JobTypeJobFacet", {"processingType", "integration"}),
        "documentation": ("DocumentationJobFacet", {"description"}),
        "ownership": ("OwnershipJobFacet", set()),
    },
}


# --- strict parsing with openlineage-python's generated classes -------------------------


def _facet_classes() -> dict[str, type]:
    """Every generated facet class by the schema URL it writes in ``_schemaURL``."""
    classes: dict[str, type] = {}
    for name in dir(generated):
        module = getattr(generated, name)
        if not isinstance(module, types.ModuleType):
            continue
        for item in vars(module).values():
            if isinstance(item, type) and issubclass(item, base.BaseFacet) and attr.has(item):
                classes.setdefault(typing.cast(Any, item)._get_schema(), item)
    return classes


FACETS = _facet_classes()


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            assert type(None) in args, f"{where}: null not allowed"
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is list:
        assert isinstance(value, list), f"{where}: expected a list"
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        assert isinstance(value, dict), f"{where}: expected an object"
        return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if hint is bool:
        assert isinstance(value, bool), f"{where}: expected a boolean"
        return value
    if hint in (int, float):
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: number"
        return value
    if hint is str:
        assert isinstance(value, str), f"{where}: expected a string"
        return value
    assert attr.has(hint), f"{where}: unexpected type {hint}"
    return strict(hint, value, where)


def strict(cls: type, data: Any, where: str = "event") -> Any:
    """``data`` as an instance of the generated class ``cls``; fails on anything off-spec."""
    assert isinstance(data, dict), f"{where}: expected an object"
    if issubclass(cls, base.BaseFacet):
        concrete = FACETS.get(data.get("_schemaURL", ""))
        assert concrete is not None, f"{where}: unknown facet {data.get('_schemaURL')}"
        assert issubclass(concrete, cls), f"{where}: {concrete.__name__} is not a {cls.__name__}"
        cls = concrete
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attr.fields(cls)}
    unknown = set(data) - set(fields)
    assert not unknown, f"{where}: fields not in {cls.__name__}: {sorted(unknown)}"
    always = {"_producer", "_schemaURL", "producer", "schemaURL"}
    missing = {
        n for n, f in fields.items() if (f.default is attr.NOTHING or n in always) and n not in data
    }
    assert not missing, f"{where}: {cls.__name__} misses required {sorted(missing)}"
    kwargs = {
        f.alias: _convert(hints[n], data[n], f"{where}.{n}")
        for n, f in fields.items()
        if f.init and n in data
    }
    instance = cls(**kwargs)  # runs the class's validators
    for name, field in fields.items():
        if not field.init:
            assert getattr(instance, name) == data[name], f"{where}.{name} is not the class's"
    return instance


def parse(line: str) -> RunEvent:
    data = json.loads(line)
    event = strict(RunEvent, data)
    assert Serde.to_dict(event) == data, "the event does not round-trip through its classes"
    for run_id in _run_ids(data):
        assert str(uuid.UUID(run_id)) == run_id, f"{run_id} is not a canonical UUID"
    _check_spec_keys(data)
    return event


def _run_ids(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        if isinstance(data.get("runId"), str):
            yield data["runId"]
        for value in data.values():
            yield from _run_ids(value)
    elif isinstance(data, list):
        for value in data:
            yield from _run_ids(value)


def _check_spec_keys(data: dict[str, Any]) -> None:
    groups = [("run", data["run"].get("facets", {})), ("job", data["job"].get("facets", {}))]
    for dataset in data["inputs"] + data["outputs"]:
        groups.append(("dataset", dataset.get("facets", {})))
        groups += [
            ("input", dataset.get("inputFacets", {})),
            ("output", dataset.get("outputFacets", {})),
        ]
    for where, facets in groups:
        for key, facet in facets.items():
            spec_file, required = SPEC_FACETS[where][key]
            assert f"/{spec_file}.json#" in facet["_schemaURL"], (key, facet["_schemaURL"])
            assert required <= set(facet), (key, required - set(facet))


# --- the document: real runs and Gold records on the real graph -------------------------

"""Checks as OpenMetadata's data-quality view: a test suite per table, a test case per check.

Every check is a case of one custom test definition, ``oneringAssetCheck`` (entity type
TABLE, platform ``Other``), with its ``blocking`` flag as a parameter. Each table gets its
basic ("executable") test suite, ``<table fqn>.testSuite``.

Checks of containers (Bronze, feature rows, ML files), Feast views and the model are not
published as test cases: OpenMetadata attaches test cases to tables (and their columns)
only — ``TestDefinition.entityType`` is TABLE or COLUMN and a test case's ``entityLink``
must name a table. Their outcome still reaches the catalog: a failed blocking check fails
its step, which is the task status in the run's pipeline status. The summary says how many
were left out.
"""

from __future__ import annotations

from typing import Any

from onering_catalog import build
from onering_catalog.state import is_managed, list_all
from onering_catalog.sync import Publisher

TEST_CASES = "dataQuality/testCases"


KINDS = {
    "container": ("container", "containers"),
    "featureView": ("Feast view", "Feast views"),
    "mlmodel": ("ML model", "ML models"),
}


def untested_note(entities: list[dict[str, Any]]) -> str | None:
    """The warning counting the checks of entities that are not tables, if any."""
    checked = [e for e in entities if e["entity"] in KINDS and e.get("checks")]
    if not checked:
        return None
    count = sum(len(e["checks"]) for e in checked)
    counts = {kind: sum(1 for e in checked if e["entity"] == kind) for kind in KINDS}
    kinds = [f"{n} {KINDS[kind][n != 1]}" for kind, n in counts.items() if n]
    what = ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else kinds[0]
    return (
        f"{count} checks of {what} are not test cases (OpenMetadata attaches test cases to "
        "tables only); their outcome is in each run's pipeline status"
    )


def _table_of(link: str) -> str | None:
    """The table FQN of an entity link ``<#E::table::fqn>`` (or ``…::columns::c>``)."""
    if not link.startswith("<#E::table::"):
        return None
    return link[len("<#E::table::") :].rstrip(">").split("::")[0]


def _definition(case: dict[str, Any]) -> str | None:
    """The test definition's name of a server test case (a reference, or a bare name)."""
    definition = case.get("testDefinition")
    if isinstance(definition, dict):
        return definition.get("fullyQualifiedName") or definition.get("name")
    return definition


def sync_checks(publisher: Publisher) -> None:
    """Test suites and test cases of the document's tables; OneRing's stale cases deleted.

    OneRing's cases carry ``OneRing.managed`` and are cases of ``oneringAssetCheck``; those
    of checks no longer in the document are soft-deleted (recoverable; re-adding the check
    restores the case).
    """
    # A table that is not OneRing's in OpenMetadata (``Publisher.refuse``) gets no cases.
    tables = [
        e
        for e in publisher.doc["entities"]
        if e["entity"] == "table" and e["fqn"] in publisher.refs
    ]
    note = untested_note(publisher.doc["entities"])
    if note:
        publisher.summary.warn(note)
    existed = any(t["fqn"] not in publisher.created for t in tables)
    fields = {"fields": "testDefinition,testSuite,tags"}
    cases = list_all(publisher.api, TEST_CASES, fields) if existed else []
    ours = {t["fqn"] for t in tables}
    on_server = {
        str(c.get("fullyQualifiedName")): c
        for c in cases
        if is_managed(c)
        and _definition(c) == build.TEST_DEFINITION
        and _table_of(str(c.get("entityLink", ""))) in ours
    }
    # A table's suite shows on the table (``fields=testSuite``) and on each of its cases.
    suites = {
        _table_of(str(c.get("entityLink", ""))) for c in on_server.values() if c.get("testSuite")
    }
    for table in tables:
        if not table.get("checks"):
            continue
        label = f"testSuite {table['fqn']}.testSuite"
        if (publisher.current.get(table["fqn"]) or {}).get("testSuite") or table["fqn"] in suites:
            publisher.summary.done("unchanged", label)
            continue
        request = build.suite_request(table["fqn"])
        publisher.api.write("PUT", "/dataQuality/testSuites/executable", request)
        publisher.summary.done("created", label)
    wanted = set()
    for table in tables:
        for check in table.get("checks") or []:
            fqn = f"{table['fqn']}.{build.quote_name(check['name'])}"
            wanted.add(fqn)
            fields = build.test_case_fields(table["fqn"], check)
            publisher.upsert(
                TEST_CASES,
                fqn,
                lambda fields=fields: build.test_case_request(fields),
                on_server.get(fqn),
                "testCase",
                desired=fields,
            )
    for fqn in sorted(set(on_server) - wanted):
        # Soft: a check removed by mistake comes back with its results when it is re-added.
        path = f"/{TEST_CASES}/{on_server[fqn]['id']}?recursive=true"
        publisher.api.write("DELETE", path)
        publisher.summary.done("deleted", f"testCase {fqn}")

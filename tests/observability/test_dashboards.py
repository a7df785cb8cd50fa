"""The Grafana dashboards and their provisioning, without a Grafana server.

No Grafana server can be installed here (Grafana is in neither Debian's nor PyPI's
registries), so the dashboards are validated by running their queries against the real
Prometheus and stores (test_metrics.py), not by rendering them. These tests check that the
committed JSON is what the generator writes and that every data source a panel names is
provisioned without a literal secret.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from onering_assets.observability.dashboards import FOLDER, rendered
from onering_assets.observability.panels import PIPELINE, STORES

PROVISIONING = FOLDER.parent / "provisioning"


def committed() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(FOLDER.glob("*.json"))}


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    assert committed() == rendered(), (
        "stale dashboards: run `python -m onering_assets.observability.dashboards`"
    )


def test_every_panel_is_in_a_dashboard_with_its_query() -> None:
    boards = {name: json.loads(text) for name, text in committed().items()}
    targets = {
        panel["title"]: panel["targets"][0]
        for board in boards.values()
        for panel in board["panels"]
    }
    assert {p.title: p.expr for p in PIPELINE} == {
        t: q["expr"] for t, q in targets.items() if "expr" in q
    }
    assert {p.title: p.sql for p in STORES} == {
        t: q["rawSql"] for t, q in targets.items() if "rawSql" in q
    }


def test_every_data_source_is_provisioned_without_a_literal_secret() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources/onering.yml").read_text())
    provisioned = {d["uid"]: d for d in config["datasources"]}
    used = {
        (panel["datasource"]["uid"], panel["datasource"]["type"])
        for text in committed().values()
        for panel in json.loads(text)["panels"]
    }
    assert {uid for uid, _ in used} == set(provisioned)
    assert all(provisioned[uid]["type"] == kind for uid, kind in used)
    for source in provisioned.values():
        for value in (source.get("secureJsonData") or {}).values():
            assert re.fullmatch(r"\$\{[A-Z_]+\}", value), f"literal secret in {source['name']}"
    assert provisioned["onering-gold"]["user"] == "onering_reader"


def test_dashboard_provider_reads_the_generated_folder() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards/onering.yml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]).name == FOLDER.name

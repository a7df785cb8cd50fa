"""A failed blocking check, planted in real data, reaches the exporter and fires the alert.

10% of January's arrival delays are not numbers: Silver's blocking ``reject_rate`` check
(limit 5%) fails and nothing is published. The exporter's text says so, and the exporter's
own ``onering_check_passed`` samples, fed to `promtool test rules`, fire
OneRingBlockingCheckFailed for exactly that check (and a test expecting silence fails).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from onering_assets.checks import names
from onering_assets.observability.collector import exposition
from tests.conftest import run, settings_for
from tests.observability.prometheus import RULES, promtool, require

pytestmark = pytest.mark.slow
MONTH = "2013-01"
FLIGHTS = {dg.AssetKey(["bronze", "flights"]), dg.AssetKey(["silver", "flights"])}


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory, make_source, flights_jan_feb: pd.DataFrame):
    require("promtool")
    january = flights_jan_feb.query("month == '1'").reset_index(drop=True)
    january.loc[january.index % 10 == 0, "arr_delay"] = "late"
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source(flights=january))
    with dg.instance_for_test() as instance:
        summary = run(settings, instance=instance, select=FLIGHTS, first=MONTH, last=MONTH)
        assert not summary.success
        failures = {(a, c) for a, c, passed, _ in summary.checks if not passed}
        assert failures == {("silver/flights", names.REJECT_RATE)}
        yield exposition(instance)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_the_exporter_reports_the_failed_run_and_check(failed: str) -> None:
    assert samples(failed, "onering_runs") == {(("status", "failure"),): 1.0}
    passed = samples(failed, "onering_check_passed")
    failing = [dict(k) for k, v in passed.items() if v == 0]
    assert failing == [{"asset": "silver/flights", "blocking": "true", "check": names.REJECT_RATE}]
    evaluations = samples(failed, "onering_check_evaluations_total")
    assert (
        evaluations[
            (
                ("asset", "silver/flights"),
                ("blocking", "true"),
                ("check", names.REJECT_RATE),
                ("status", "failed"),
            )
        ]
        == 1.0
    )
    written = {dict(k)["asset"] for k in samples(failed, "onering_rows_written_total")}
    assert written == {"bronze/flights"}  # Silver was not published


def expected_annotations(labels: dict[str, str]) -> dict[str, str]:
    """The alert's annotation templates with ``{{ $labels.x }}`` filled in."""
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    (rule,) = [r for r in rules if r.get("alert") == "OneRingBlockingCheckFailed"]
    filled = {}
    for name, template in rule["annotations"].items():
        for label, value in labels.items():
            template = template.replace("{{ $labels." + label + " }}", value)
        filled[name] = template
    return filled


def rules_test(failed: str, expect_alerts: bool) -> dict:
    passed = samples(failed, "onering_check_passed")
    series = [
        {
            "series": "onering_check_passed{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}",
            "values": f"{value:g}x5",
        }
        for labels, value in passed.items()
    ]
    alerts = [
        {
            "exp_labels": {**dict(labels), "severity": "critical"},
            "exp_annotations": expected_annotations(dict(labels)),
        }
        for labels, value in passed.items()
        if value == 0 and dict(labels)["blocking"] == "true"
    ]
    return {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "2m",
                        "alertname": "OneRingBlockingCheckFailed",
                        "exp_alerts": alerts if expect_alerts else [],
                    }
                ],
            }
        ],
    }


def test_the_exported_failure_fires_the_blocking_check_alert(failed: str, tmp_path: Path) -> None:
    fires, silent = tmp_path / "fires.yml", tmp_path / "silent.yml"
    fires.write_text(yaml.safe_dump(rules_test(failed, expect_alerts=True)))
    silent.write_text(yaml.safe_dump(rules_test(failed, expect_alerts=False)))
    result = promtool("test", "rules", str(fires), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("test", "rules", str(silent), cwd=tmp_path)
    assert result.returncode != 0  # expecting silence fails: the alert fired
    assert "OneRingBlockingCheckFailed" in result.stdout + result.stderr

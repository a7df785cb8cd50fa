"""The committed scrape config and alert rules, checked by Debian's promtool.

`promtool test rules` plants series for each alert: it fires on them and stays silent on
the clean series beside them (platform/observability/prometheus/tests).
"""

from __future__ import annotations

import yaml

from tests.observability.prometheus import PROMETHEUS_DIR, promtool


def test_scrape_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", "rules/onering.rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 rules found" in result.stdout


def test_each_alert_fires_on_planted_series_and_not_on_clean_ones() -> None:
    tests = PROMETHEUS_DIR / "tests/onering.rules.test.yml"
    result = promtool("test", "rules", str(tests.relative_to(PROMETHEUS_DIR)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_planted_test() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules/onering.rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROMETHEUS_DIR / "tests/onering.rules.test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    silent = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if not case["exp_alerts"]
    }
    assert (
        alerts
        == fired
        == silent
        == {
            "OneRingBlockingCheckFailed",
            "OneRingGoldStale",
            "OneRingRejectRateRising",
        }
    )

"""`onering_*` Prometheus metrics: a custom collector over the Dagster instance.

Every scrape reads the instance; a finished run never changes, so its facts are read once
and kept. Counters are what the instance recorded: `onering gc` deleting old runs lowers
them, which Prometheus treats as a counter reset.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from onering_assets.observability.facts import RunFacts, run_facts

BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


def _histogram(name: str, doc: str, labels: list[str], samples: dict[tuple, list[float]]):
    family = HistogramMetricFamily(name, doc, labels=labels)
    for label_values, values in sorted(samples.items()):
        buckets = [(str(b), sum(v <= b for v in values)) for b in BUCKETS]
        buckets.append(("+Inf", len(values)))
        family.add_metric(list(label_values), buckets, sum(values))
    return family


class Totals:
    """The metric values summed over runs."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = defaultdict(int)
        self.run_seconds: dict[tuple, list[float]] = defaultdict(list)
        self.airflow: dict[tuple, int] = defaultdict(int)
        self.materializations: dict[tuple, int] = defaultdict(int)
        self.rows: dict[tuple, int] = defaultdict(int)
        self.rejected: dict[tuple, int] = defaultdict(int)
        self.last_materialized: dict[tuple, float] = {}
        self.checks: dict[tuple, int] = defaultdict(int)
        self.latest_check: dict[tuple, tuple[float, bool]] = {}
        self.step_seconds: dict[tuple, list[float]] = defaultdict(list)
        self.lock_waits: dict[tuple, float] = defaultdict(float)
        # (asset, layer) -> [(when, rows written, rows rejected)], one entry per run (build)
        self.builds: dict[tuple, list[tuple[float, int, int]]] = defaultdict(list)

    def add(self, facts: RunFacts) -> None:
        self.runs[facts.status] += 1
        if facts.seconds is not None and facts.finished:
            self.run_seconds[(facts.status,)].append(facts.seconds)
        if facts.airflow:
            self.airflow[(*facts.airflow, facts.status)] += 1
        built: dict[tuple, tuple[float, int, int]] = {}
        for w in facts.written:
            labels = (w.asset, w.layer)
            if w.splits_rejects:
                when, rows, rejected = built.get(labels, (0.0, 0, 0))
                built[labels] = (max(when, w.when), rows + (w.rows or 0), rejected + w.rejected)
            self.materializations[labels] += 1
            self.rows[labels] += w.rows or 0
            self.rejected[labels] += w.rejected
            self.last_materialized[labels] = max(w.when, self.last_materialized.get(labels, 0))
            for kind, seconds in w.lock_waits.items():
                self.lock_waits[(*labels, kind)] += seconds
        for labels, build in built.items():
            self.builds[labels].append(build)
        for c in facts.checked:
            blocking = "true" if c.blocking else "false"
            status = "passed" if c.passed else "failed"
            self.checks[(c.asset, c.check, blocking, status)] += 1
            key = (c.asset, c.check, blocking)
            if key not in self.latest_check or self.latest_check[key][0] <= c.when:
                self.latest_check[key] = (c.when, c.passed)
        for s in facts.steps:
            self.step_seconds[(s.step, s.status)].append(s.seconds)

    def families(self) -> Iterator[Metric]:
        # A gauge: a queued or started run moves to another status, and `onering gc` deletes.
        runs = GaugeMetricFamily(
            "onering_runs", "Runs the instance holds, by status.", labels=["status"]
        )
        for status, n in sorted(self.runs.items()):
            runs.add_metric([status], n)
        yield runs
        yield _histogram(
            "onering_run_duration_seconds",
            "Wall time of finished runs.",
            ["status"],
            self.run_seconds,
        )
        yield _histogram(
            "onering_step_duration_seconds",
            "Wall time of each step (one asset or multi-asset).",
            ["step", "status"],
            self.step_seconds,
        )
        airflow = CounterMetricFamily(
            "onering_airflow_task_runs",
            "Runs launched by the Airflow bridge (run tags airflow/dag_id, airflow/task_id).",
            labels=["dag_id", "task_id", "status"],
        )
        for labels, n in sorted(self.airflow.items()):
            airflow.add_metric(list(labels), n)
        yield airflow
        yield from self._asset_families()
        yield from self._check_families()

    def _asset_families(self) -> Iterator[Metric]:
        asset = ["asset", "layer"]
        for name, doc, values in (
            ("onering_materializations", "Materializations per asset.", self.materializations),
            ("onering_rows_written", "Rows written per asset (per partition).", self.rows),
            ("onering_rows_rejected", "Rows rejected into a rejects table.", self.rejected),
        ):
            family = CounterMetricFamily(name, doc, labels=asset)
            for labels, n in sorted(values.items()):
                family.add_metric(list(labels), n)
            yield family
        waits = CounterMetricFamily(
            "onering_store_lock_wait_seconds",
            "Seconds materializing steps waited for store and publication locks, by lock kind.",
            labels=[*asset, "lock"],
        )
        for labels, seconds in sorted(self.lock_waits.items()):
            waits.add_metric(list(labels), seconds)
        yield waits
        ratio = GaugeMetricFamily(
            "onering_reject_ratio",
            "Rows rejected of all rows read by the latest build of the asset, and by the one "
            "before (a build is one run that published it).",
            labels=[*asset, "build"],
        )
        for labels, builds in sorted(self.builds.items()):
            ordered = sorted(builds, reverse=True)
            for name, (_, rows, rejected) in zip(("latest", "previous"), ordered, strict=False):
                if rows + rejected:
                    ratio.add_metric([*labels, name], rejected / (rows + rejected))
        yield ratio
        last = GaugeMetricFamily(
            "onering_asset_last_materialization_timestamp_seconds",
            "Unix time of the asset's latest materialization.",
            labels=asset,
        )
        for labels, when in sorted(self.last_materialized.items()):
            last.add_metric(list(labels), when)
        yield last

    def _check_families(self) -> Iterator[Metric]:
        checks = CounterMetricFamily(
            "onering_check_evaluations",
            "Completed check evaluations by outcome.",
            labels=["asset", "check", "blocking", "status"],
        )
        for labels, n in sorted(self.checks.items()):
            checks.add_metric(list(labels), n)
        yield checks
        latest = GaugeMetricFamily(
            "onering_check_passed",
            "Whether the check's latest evaluation passed (1) or failed (0).",
            labels=["asset", "check", "blocking"],
        )
        for labels, (_, passed) in sorted(self.latest_check.items()):
            latest.add_metric(list(labels), 1.0 if passed else 0.0)
        yield latest


class InstanceCollector(Collector):
    """Reads the instance on every scrape; finished runs are read once."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._finished: dict[str, RunFacts] = {}
        self._lock = threading.Lock()

    def _facts(self) -> Iterable[RunFacts]:
        records = self.instance.get_run_records()
        live = {r.dagster_run.run_id for r in records}
        for run_id in set(self._finished) - live:  # deleted by `onering gc`
            del self._finished[run_id]
        for record in records:
            run_id = record.dagster_run.run_id
            if run_id in self._finished:
                yield self._finished[run_id]
                continue
            facts = run_facts(self.instance, record)
            if facts.finished:
                self._finished[run_id] = facts
            yield facts

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            totals = Totals()
            for facts in self._facts():
                totals.add(facts)
        yield from totals.families()


def registry_for(instance: dg.DagsterInstance) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InstanceCollector(instance))
    return registry


def exposition(instance: dg.DagsterInstance) -> str:
    """The metrics in Prometheus' text format, as a scrape would see them now."""
    return generate_latest(registry_for(instance)).decode()


def serve(instance: dg.DagsterInstance, host: str, port: int) -> Any:
    """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns ``(server, thread)``."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=registry_for(instance))

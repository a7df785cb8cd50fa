"""How `make test` splits the suite over two pytest-xdist workers (``-n 2 --dist loadscope``).

A scope runs whole on one worker. It is a test module, except the folders whose modules share
session fixtures (a trained champion and a Spark session, a Feast state, a published catalog,
an airlines state): there the folder is one scope, so the fixture is built once. Scopes start
longest first (the longest-processing-time rule), so no long module starts last and runs
alone; the figures are seconds measured on this 2-core machine with two workers. A stale
figure costs balance, never correctness; a scope not listed starts after them, in
collection order.

(pytest-xdist's ``xdist_group`` marks do not work with pytest 9.2: xdist 3.8 rewrites
``item._nodeid``, which pytest 9.2 no longer reads. A scheduler needs no marks.)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from xdist.scheduler import LoadScopeScheduling

SHARED_SESSION_FOLDERS = ("catalog", "features", "lineage", "ml")

SECONDS = {
    "tests/catalog": 561,
    "tests/ml": 500,
    "tests/airflow_bridge/test_retries.py": 432,
    "tests/airflow_bridge/test_publish_lineage.py": 350,
    "tests/test_faults_postgres.py": 303,
    "tests/airflow_bridge/test_dag_runs.py": 269,
    "tests/airflow_bridge/test_env_export.py": 170,
    "tests/airflow_bridge/test_local.py": 252,
    "tests/test_faults_lake.py": 220,
    "tests/test_faults.py": 194,
    "tests/bronze/test_spark_engine.py": 275,
    "tests/stream/test_flink.py": 190,
    "tests/test_airbyte.py": 100,
    "tests/change/test_apply.py": 150,
    "tests/change/test_envs.py": 80,
    "tests/change/test_plan_gates.py": 45,
    "tests/change/test_env_changesets.py": 150,
    "tests/stream/test_stream.py": 180,
    "tests/corpus/test_corpus.py": 159,
    "tests/airflow_bridge/test_graphql.py": 149,
    "tests/test_airflow_ui.py": 138,
    "tests/test_bad_data.py": 137,
    "tests/test_migrate_cli.py": 25,
    "tests/silver/test_ddl.py": 12,
    "tests/test_stores.py": 118,
    "tests/test_ui.py": 83,
    "tests/lineage": 83,
    "tests/test_sql_cli.py": 82,
    "tests/gold/test_audit.py": 76,
    "tests/test_pipeline.py": 66,
    "tests/features": 66,
    "tests/test_check_writes_nothing.py": 55,
    "tests/test_reset.py": 52,
    "tests/test_dev.py": 47,
    "tests/test_query.py": 47,
    "tests/stream/test_cli.py": 60,
    "tests/stream/test_silver_sensor.py": 40,
    "tests/test_progress.py": 1,
    "tests/airflow_bridge/test_processes.py": 2,
    "tests/test_airbyte_instance.py": 25,
    "tests/observability/test_metrics.py": 85,
    "tests/observability/test_metrics_failure.py": 35,
    "tests/stream/test_stream_decode.py": 25,
    "tests/test_compose_stack.py": 15,
    "tests/test_metabase.py": 15,
    "tests/ci/test_jenkins.py": 10,
    "tests/test_instance_config.py": 8,
    "tests/test_eventlog.py": 7,
    "tests/test_secrets.py": 30,
    "tests/test_scale_sim.py": 8,
}


def scope_of(nodeid: str) -> str:
    """``tests/ml`` for any test under it; otherwise the test's module path."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in SHARED_SESSION_FOLDERS:
        return "/".join(parts[:2])
    return path


class LongestFirstScheduling(LoadScopeScheduling):
    """pytest-xdist's ``loadscope`` with OneRing's scopes, longest first."""

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        self._ordered = False

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)

    def _assign_work_unit(self, node: Any) -> None:
        if not self._ordered:  # the queue is complete before the first unit is handed out
            ranked = sorted(self.workqueue.items(), key=lambda item: -SECONDS.get(item[0], 0))
            self.workqueue = OrderedDict(ranked)
            self._ordered = True
        super()._assign_work_unit(node)

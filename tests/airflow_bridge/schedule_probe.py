"""When Airflow's scheduler would run the DAGs of a folder: prints one JSON line.

Run in a child process with an ``AIRFLOW_HOME`` (as tests/airflow_bridge/test_export.py
does): ``python schedule_probe.py DAGS_FOLDER NOW...``. Per DAG: the partition keys its
timetable yields from its start date to its end date when catching up, and, for each
``NOW`` (ISO), the run a scheduler would queue first at that time (``catchup=False``).
"""

import json
import sys
from datetime import datetime
from unittest import mock

from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import TimeRestriction


def caught_up(dag) -> list[str | None]:
    """Every run the timetable has between the DAG's start and end date, by key."""
    restriction = TimeRestriction(dag.start_date, dag.end_date, catchup=True)
    info, keys = None, []
    while len(keys) < 1000:
        info = dag.timetable.next_dagrun_info_v2(last_dagrun_info=info, restriction=restriction)
        if info is None:
            break
        keys.append(info.partition_key)
    return keys


def first_run(dag, now: datetime) -> list[str | None] | None:
    """The run queued first when the DAG is unpaused at ``now``: [run after, key]."""
    with mock.patch("airflow.timetables.trigger.utcnow", return_value=now):
        info = dag.next_dagrun_info(last_automated_run_info=None)
    return [info.run_after.isoformat(), info.partition_key] if info else None


def main(folder: str, *nows: str) -> None:
    bag = DagBag(dag_folder=folder)
    out = {}
    for dag_id, sdk_dag in sorted(bag.dags.items()):
        dag = DagSerialization.from_dict(DagSerialization.to_dict(sdk_dag))
        if not dag.timetable.periodic:
            out[dag_id] = None
            continue
        out[dag_id] = {
            "caught_up": caught_up(dag),
            "first_run": {now: first_run(dag, datetime.fromisoformat(now)) for now in nows},
        }
    print(json.dumps({"errors": {str(k): v for k, v in bag.import_errors.items()}, "dags": out}))


if __name__ == "__main__":
    main(*sys.argv[1:])

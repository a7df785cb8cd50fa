"""Run one DAG with the real Airflow 3 (`dag.test()`), in its own process; print the result.

Usage: python run_dag.py DAGS_FOLDER DAG_ID CONF_JSON

Prints one JSON line: the run's state, each task's state (``tasks``), each task's last try
number (``tries``: 1 means it was not retried) and its XCom return value (``xcom``).
"""

import json
import sys

# dag.test() runs every try in this one process, where Airflow's workers start a process
# per try. A kill that interrupts a C extension's first import (chDB's) leaves it broken in
# this process for the retry, so load it first. (The local Airflow's scheduler must not
# preload it: its task processes are forked, and chDB does not survive a fork.)
import chdb  # noqa: F401
from airflow.dag_processing.dagbag import DagBag


def main() -> None:
    folder, dag_id, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        print(json.dumps({"import_errors": {str(k): v for k, v in bag.import_errors.items()}}))
        sys.exit(2)
    run = bag.dags[dag_id].test(run_conf=conf)
    tis = run.get_task_instances()
    print(
        json.dumps(
            {
                "state": str(run.state),
                "tasks": {ti.task_id: str(ti.state) for ti in tis},
                "tries": {ti.task_id: ti.try_number for ti in tis},
                "xcom": {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in tis},
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()

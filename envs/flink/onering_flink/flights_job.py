"""The flights job: hourly departures per airport and runs of three delayed departures per route.

Launched by the ``stream/flink_flights`` asset through Dagster Pipes (subprocess) with the
Flink environment's interpreter. The main environment hands it departed flights as a
header-less CSV file sorted by local departure time (``departure_csv`` extra, columns
:data:`COLUMNS`); the job writes its two results as header-less CSV files into ``out_dir``
and reports, per result, its rows and the Flink job's id back over Pipes. The ``results``
extra names the results wanted (an Airflow task materializes one asset: one query runs).

Both queries are Flink SQL in streaming mode over the bounded file: an event-time
``TUMBLE`` window (one hour, per origin airport) and ``MATCH_RECOGNIZE`` (PyFlink has no
Python CEP API). The end of the bounded input emits the final watermark, so every window
and every pending match fires before the job ends.

``jobmanager`` (``host:port`` of a JobManager's REST endpoint) runs the job on a standalone
cluster instead of the local mini-cluster. The job is pure SQL: no Python worker runs on
the cluster, whose TaskManagers only need to read ``departure_csv`` and write ``out_dir``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

COLUMNS = "carrier, flight, origin, dest, dep_local, dep_delay"
SOURCE = """
CREATE TABLE departures (
  carrier STRING,
  flight INT,
  origin STRING,
  dest STRING,
  dep_local STRING,
  dep_delay INT,
  dep_ts AS TO_TIMESTAMP(dep_local, 'yyyy-MM-dd HH:mm:ss'),
  WATERMARK FOR dep_ts AS dep_ts - INTERVAL '1' MINUTE
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
"""
SINKS = {
    "departures_hourly": """
CREATE TABLE departures_hourly (
  airport STRING, hour_start STRING, departures BIGINT, delayed BIGINT, avg_delay_min DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
""",
    "delay_streaks": """
CREATE TABLE delay_streaks (
  route STRING, first_carrier STRING, first_flight INT, first_dep STRING,
  last_carrier STRING, last_flight INT, last_dep STRING, min_delay INT, max_delay INT
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
""",
}
# A departure is delayed when it left more than 15 minutes late (the ML label's threshold).
DELAYED_MIN = 15
QUERIES = {
    "departures_hourly": f"""
INSERT INTO departures_hourly
SELECT origin, DATE_FORMAT(window_start, 'yyyy-MM-dd HH:mm:ss'), COUNT(*),
       SUM(CASE WHEN dep_delay > {DELAYED_MIN} THEN 1 ELSE 0 END),
       AVG(CAST(dep_delay AS DOUBLE))
FROM TABLE(TUMBLE(TABLE departures, DESCRIPTOR(dep_ts), INTERVAL '1' HOUR))
GROUP BY origin, window_start, window_end
""",
    "delay_streaks": f"""
INSERT INTO delay_streaks
SELECT route, first_carrier, first_flight, DATE_FORMAT(first_dep, 'yyyy-MM-dd HH:mm:ss'),
       last_carrier, last_flight, DATE_FORMAT(last_dep, 'yyyy-MM-dd HH:mm:ss'),
       min_delay, max_delay
FROM (SELECT *, origin || '-' || dest AS route FROM departures)
MATCH_RECOGNIZE (
  PARTITION BY route
  ORDER BY dep_ts, carrier, flight
  MEASURES
    FIRST(D.carrier) AS first_carrier, FIRST(D.flight) AS first_flight,
    FIRST(D.dep_ts) AS first_dep,
    LAST(D.carrier) AS last_carrier, LAST(D.flight) AS last_flight,
    LAST(D.dep_ts) AS last_dep,
    MIN(D.dep_delay) AS min_delay, MAX(D.dep_delay) AS max_delay
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (D{{3}})
  DEFINE D AS D.dep_delay > {DELAYED_MIN}
)
""",
}


def environment(jobmanager: str) -> Any:
    """A streaming TableEnvironment on the local mini-cluster or on ``jobmanager``."""
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    conf = Configuration()
    if jobmanager:
        host, _, port = jobmanager.rpartition(":")
        conf.set_string("execution.target", "remote")
        conf.set_string("rest.address", host)
        conf.set_string("rest.port", port)
    else:  # the mini-cluster's REST endpoint and web UI stay on loopback
        conf.set_string("rest.bind-address", "127.0.0.1")
        conf.set_string("rest.address", "127.0.0.1")
    conf.set_string("parallelism.default", "1")  # ordered input; one file per result
    settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf)
    return TableEnvironment.create(settings.build())


def run(
    departure_csv: str, out_dir: str, jobmanager: str = "", names: list[str] | None = None
) -> dict[str, Any]:
    """Run the named queries (all by default) as one Flink job: its id, seconds, files."""
    out = Path(out_dir)
    names = names or list(SINKS)
    t_env = environment(jobmanager)
    t_env.execute_sql(SOURCE.format(path=Path(departure_csv).resolve().as_uri()))
    statements = t_env.create_statement_set()
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
        t_env.execute_sql(SINKS[name].format(path=(out / name).resolve().as_uri()))
        statements.add_insert_sql(QUERIES[name])
    started = time.monotonic()
    result = statements.execute()
    client = result.get_job_client()
    job_id = str(client.get_job_id()) if client is not None else ""
    result.wait()
    return {
        "job_id": job_id,
        "seconds": round(time.monotonic() - started, 2),
        "results": {name: sorted(str(p) for p in (out / name).rglob("part-*")) for name in names},
    }


def count_rows(files: list[str]) -> int:
    return sum(sum(1 for line in Path(f).open(encoding="utf-8") if line.strip()) for f in files)


def main() -> None:
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        departure_csv = str(pipes.get_extra("departure_csv"))
        out_dir = str(pipes.get_extra("out_dir"))
        jobmanager = str(pipes.get_extra("jobmanager") or "")
        names = [str(n) for n in pipes.get_extra("results")]
        where = f"the JobManager at {jobmanager}" if jobmanager else "a local mini-cluster"
        pipes.log.info(f"running the flights job on {where}")
        ran = run(departure_csv, out_dir, jobmanager, names)
        for name, files in ran["results"].items():
            pipes.report_asset_materialization(
                asset_key=f"stream/{name}",
                metadata={
                    "flink_job_id": ran["job_id"],
                    "flink_seconds": {"raw_value": ran["seconds"], "type": "float"},
                    "flink_rows": {"raw_value": count_rows(files), "type": "int"},
                    "flink_target": jobmanager or "mini-cluster",
                },
            )


if __name__ == "__main__":  # PyFlink's UDF workers import modules; launch the gateway only here
    main()

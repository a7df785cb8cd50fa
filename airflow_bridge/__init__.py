"""Asset-graph snapshot to Airflow DAGs: no Dagster import at DAG parse time."""

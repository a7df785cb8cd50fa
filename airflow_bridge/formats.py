"""File names and format versions shared by the export side and the DAG-parse side."""

MANIFEST_FILE = "onering_manifest.json"
MANIFEST_VERSION = 1
# 2: DAG-level partitions and schedule_fmts (partitioned Airflow timetables).
# 3: schedule_window (a partitioned cron DAG runs for its declared partitions only).
# 4: render.publish_lineage (the publish_lineage teardown task).
PLAN_VERSION = 4

# Partition key formats the bridge maps between Dagster and Airflow.
MONTHLY, DAILY = "%Y-%m", "%Y-%m-%d"
PARTITION_FORMATS = (MONTHLY, DAILY)

# The Dagster run tag naming the environment a run builds (onering_assets/namespaces.py).
ENV_TAG = "onering/env"

# OneRing's errors a retry cannot fix (onering_assets.errors.not_retryable(), which a test
# keeps this equal to): the dagster_graphql mode reads them off a failed step's error chain.
NOT_RETRYABLE = frozenset(
    {
        "ChangelogError",
        "ConfigError",
        "CorruptLakeFileError",
        "DriftInputError",
        "ModelInputError",
        "NoChampionError",
        "NothingSelectedError",
        "ReadOnlyError",
        "RequestError",
        "SecretsRefusedError",
    }
)

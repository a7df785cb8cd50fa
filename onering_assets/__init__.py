import os as _os

# Nothing leaves the machine: MLflow 3 sends usage telemetry unless told not to, and
# DO_NOT_TRACK is the convention several libraries (BentoML, Evidently…) honour. Set before
# any of them is imported (they read it at import or first use); a user's own value wins.
for _name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "BENTOML_DO_NOT_TRACK"):
    _os.environ.setdefault(_name, "true")

# Dagster stores a run's planned events (227 for the medallion's year) and a step's
# materializations of several partitions as one batch when this is set: one fsync per SQLite
# shard for the batch (onering_assets/eventlog.py), one round trip on dagster-postgres.
_os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")

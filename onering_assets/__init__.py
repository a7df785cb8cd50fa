import os as _os

# Nothing leaves the machine: MLflow 3 sends usage telemetry unless told not to, and
# DO_NOT_TRACK is the convention several libraries (BentoML, Evidently…) honour. Set before
# any of them is imported (they read it at import or first use); a user's own value wins.
for _name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "BENTOML_DO_NOT_TRACK"):
    _os.environ.setdefault(_name, "true")

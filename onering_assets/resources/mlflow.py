"""MLflow tracking and model registry: SQLite + local artifacts locally, a server in compose.

Local: tracking and registry ``sqlite:///<state>/mlflow/mlflow.db``, artifacts under
``<state>/mlflow/artifacts`` (the experiment's artifact location). Compose: the MLflow
server (``MLFLOW_TRACKING_URI``, e.g. ``http://127.0.0.1:5000``), itself backed by Postgres
and MinIO; artifacts go through the server. MLflow is imported only when used (it takes
seconds), never at definitions load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from onering_assets.settings import Settings, redact_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT = "flight_late_arrival"


def local_tracking_uri(state_dir: Path) -> str:
    """The local profile's registry: ``sqlite:///<state>/mlflow/mlflow.db``."""
    return f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}"


class MlflowResource(dg.ConfigurableResource):
    """Where runs are tracked and models registered.

    Attributes:
        tracking_uri: ``sqlite:///…`` or ``http(s)://server``; the registry is the same store.
        artifact_dir: a local folder for a new experiment's artifacts (SQLite only; a server
            keeps its own artifact store).
        experiment: the experiment runs are logged to.
    """

    tracking_uri: str
    artifact_dir: str | None = None
    experiment: str = EXPERIMENT

    @property
    def display_uri(self) -> str:
        """The tracking URI without credentials, for logs and metadata."""
        return redact_url(self.tracking_uri)

    @property
    def exists(self) -> bool:
        """Whether the store can hold anything yet (a SQLite file that was never created cannot)."""
        if self.tracking_uri.startswith("sqlite:///"):
            return Path(self.tracking_uri.removeprefix("sqlite:///")).exists()
        return True

    def client(self) -> MlflowClient:
        """A client on this store, and the fluent API (``mlflow.start_run``) pointed at it."""
        import mlflow
        from mlflow import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        # The fluent API is process-global: point it here before every use.
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, client: MlflowClient) -> str:
        """The experiment's id, created (with the local artifact folder) on first use."""
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = Path(self.artifact_dir).resolve().as_uri() if self.artifact_dir else None
        return client.create_experiment(self.experiment, artifact_location=location)


def mlflow_resource(settings: Settings) -> MlflowResource:
    """The profile's registry: SQLite under the state, or ``MLFLOW_TRACKING_URI`` (read at run)."""
    if settings.profile == "local":
        return MlflowResource(
            tracking_uri=local_tracking_uri(settings.state_dir),
            artifact_dir=str(settings.state_dir / "mlflow" / "artifacts"),
        )
    return MlflowResource(tracking_uri=dg.EnvVar(TRACKING_URI_ENV))  # type: ignore[arg-type]

"""Where the Flink jobs run: the Flink environment's Python, on a mini-cluster or a cluster.

apache-flink pins numpy<2.2, pyarrow<17 and protobuf<6, so PyFlink lives in its own
environment (``envs/flink``, created by ``make setup``) and the jobs are launched from the
assets through Dagster Pipes as subprocesses of that interpreter. ``jobmanager``
(``host:port`` of a JobManager's REST endpoint, ``ONERING_FLINK_JOBMANAGER``) sends them to
a standalone cluster; empty runs them on a local mini-cluster inside the subprocess.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import dagster as dg

from onering_assets.errors import ConfigError
from onering_assets.pipes import isolated_env
from onering_assets.settings import PROJECT_ROOT, Settings

FLINK_ENV = PROJECT_ROOT / "envs" / "flink"
JOBMANAGER_ENV = "ONERING_FLINK_JOBMANAGER"
PROBE_TIMEOUT_S = 10


class FlinkResource(dg.ConfigurableResource):
    """The interpreter of the Flink environment, and the cluster to submit to (if any).

    ``work_dir`` is where a run hands the job its input and the job writes its results
    (a temporary folder under it, removed after the run); a remote cluster's TaskManagers
    must see it at the same path (a shared volume in compose). Empty: the system's temp.
    """

    python: str = str(FLINK_ENV / ".venv" / "bin" / "python")
    jobmanager: str = ""
    work_dir: str = ""

    def interpreter(self) -> str:
        """The Flink environment's Python, or a ConfigError saying how to create it."""
        if not Path(self.python).is_file():
            raise ConfigError(
                f"The Flink environment is not installed ({self.python} is missing): run "
                "`make setup`, which creates envs/flink/.venv (apache-flink 2.3)."
            )
        if self.jobmanager and not self.jobmanager.rpartition(":")[2].isdigit():
            raise ConfigError(
                f"{JOBMANAGER_ENV}={self.jobmanager!r}: give the JobManager's REST endpoint as "
                "host:port (e.g. flink-jobmanager:8081)."
            )
        if self.jobmanager:
            self._answers()
        return self.python

    def _answers(self) -> None:
        """The JobManager's REST API answers, or one line naming it (before a JVM starts)."""
        url = f"http://{self.jobmanager}/overview"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
                json.loads(response.read())
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise ConfigError(
                f"The Flink JobManager at {url} does not answer ({reason}): check "
                f"{JOBMANAGER_ENV} (host:port of its REST endpoint) and that the cluster runs."
            ) from None

    def child_env(self) -> dict[str, str]:
        """The subprocess's own environment: none of the main environment's Python paths."""
        java_home = os.environ.get("JAVA_HOME", "")
        return isolated_env(self.python, **({"JAVA_HOME": java_home} if java_home else {}))


def flink_resource(settings: Settings) -> FlinkResource:
    """Locally a mini-cluster; compose names its JobManager in ``ONERING_FLINK_JOBMANAGER``."""
    if settings.profile == "local":
        return FlinkResource(jobmanager=os.environ.get(JOBMANAGER_ENV, ""))
    return FlinkResource(
        jobmanager=dg.EnvVar(JOBMANAGER_ENV), work_dir=dg.EnvVar("ONERING_FLINK_WORK_DIR")
    )

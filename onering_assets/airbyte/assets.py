"""One multi-asset per Airbyte connection: ``airbyte/<connection>_<stream>`` for each stream.

A run launches ``envs/airbyte/onering_airbyte/sync.py`` with the Airbyte environment's
Python through Dagster Pipes: PyAirbyte checks the config, reads every selected stream in
full with the connector's own executable (never Airbyte's online registry:
``AIRBYTE_OFFLINE_MODE=1``), and writes each as Parquet; the cached tables' row counts come
back over Pipes. Each stream lands in the lake as ``airbyte/<connection>_<stream>/data.parquet``
only when check ``records_landed`` passes (the Parquet file holds as many rows as the
PyAirbyte DuckDB cache table it was written from, and at least one). A config the connector
refuses fails the step with the connector's reason in one line.

With ``ONERING_AIRBYTE_URL`` set, the same multi-asset drives that running Airbyte instead
(``remote.py``): its connection is made to match the YAML, synced through dagster-airbyte,
and each stream's records come from the job.
"""

import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext
from dagster._core.errors import DagsterPipesExecutionError

from onering_assets.airbyte.connections import Connection, load_connections
from onering_assets.checks.outcome import Outcome, not_published
from onering_assets.checks.specs import CheckDecl, emit, to_specs
from onering_assets.errors import ConfigError
from onering_assets.pipes import Produced, isolated_env, land_checked, run_module
from onering_assets.resources import LakeResource, SourceResource
from onering_assets.settings import (
    AIRBYTE_CLIENT_ID,
    AIRBYTE_CLIENT_SECRET,
    PROJECT_ROOT,
    AirbyteSettings,
)

LAYER = "airbyte"
AIRBYTE_ENV = PROJECT_ROOT / "envs" / "airbyte"
ERROR_FILE = "error.txt"  # what sync.py writes when the connection fails
LANDED = "records_landed"
DECLS = [
    CheckDecl(
        LANDED,
        True,
        "Every record the connector delivered is in the landed file, and there is at least one.",
    )
]


class AirbyteResource(dg.ConfigurableResource):
    """Where the connections run: PyAirbyte here, or a running Airbyte when ``url`` is set.

    ``python`` is the Airbyte environment's interpreter (each connector has its own
    environment). The other fields are :class:`AirbyteSettings`' and the instance's
    credentials (see ``docs/settings.md``); the secrets come only as ``dg.EnvVar``.
    """

    python: str = str(AIRBYTE_ENV / ".venv" / "bin" / "python")
    url: str = ""
    workspace_id: str = ""
    client_id: str = ""
    client_secret: str = ""
    lake_url: str = ""
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    source_dir: str = ""
    poll_interval_s: float = 5.0
    poll_timeout_s: float = 3600.0

    def interpreter(self) -> str:
        if not Path(self.python).is_file():
            raise ConfigError(
                f"The Airbyte environment is not installed ({self.python} is missing): run "
                "`make setup`, which creates envs/airbyte/.venv and each connector's environment."
            )
        return self.python

    def child_env(self, work_dir: Path) -> dict[str, str]:
        return isolated_env(
            self.python,
            AIRBYTE_OFFLINE_MODE="1",  # no registry lookups: connectors are local executables
            DO_NOT_TRACK="1",  # no telemetry
            AIRBYTE_LOGGING_ROOT=str(work_dir / "logs"),
            UV_PYTHON_DOWNLOADS="never",
            PYTHONWARNINGS="ignore::FutureWarning",
        )


def airbyte_resource(env: Mapping[str, str] | None = None) -> AirbyteResource:
    """PyAirbyte here, or the instance ``ONERING_AIRBYTE_URL`` names (read now, not at import)."""
    env = os.environ if env is None else env
    settings = AirbyteSettings.from_env(env)
    if settings.url is None:
        return AirbyteResource()

    def secret(name: str) -> str:
        return dg.EnvVar(name) if env.get(name) else ""

    return AirbyteResource(
        url=settings.url,
        workspace_id=settings.workspace_id,
        client_id=secret(AIRBYTE_CLIENT_ID),
        client_secret=secret(AIRBYTE_CLIENT_SECRET),
        lake_url=settings.lake_url,
        s3_endpoint=settings.s3_endpoint,
        s3_region=settings.s3_region,
        aws_access_key_id=secret("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=secret("AWS_SECRET_ACCESS_KEY"),
        source_dir=settings.source_dir,
        poll_interval_s=settings.poll_interval_s,
        poll_timeout_s=settings.poll_timeout_s,
    )


def table_name(connection: Connection, stream: str) -> str:
    return f"{connection.name}_{stream}"


def key(connection: Connection, stream: str) -> dg.AssetKey:
    return dg.AssetKey([LAYER, table_name(connection, stream)])


def spec(connection: Connection, stream: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=key(connection, stream),
        description=f"{connection.description} Stream {stream!r} of {connection.source}.",
        group_name="airbyte",
        owners=list(connection.owners),
        tags={"layer": LAYER, "store": "lake"},
        kinds={"airbyte", "parquet"},
        metadata={
            "uri": f"{LAYER}/{table_name(connection, stream)}/",
            "airbyte/connection": f"platform/ingestion/airbyte/{connection.name}.yml",
            "airbyte/source": connection.source,
        },
    )


def landed_outcome(rows: int, delivered: int | None) -> Outcome:
    if delivered is not None and rows != delivered:
        return Outcome.failed(
            LANDED, f"{rows} rows landed of {delivered} records delivered", [], {"rows": rows}
        )
    if rows == 0:
        return Outcome.failed(LANDED, "the connector delivered no record", [], {"rows": 0})
    return Outcome(LANDED, True, f"{rows} records delivered and landed", metadata={"rows": rows})


def _run_sync(
    context: AssetExecutionContext,
    airbyte: AirbyteResource,
    connection: Connection,
    source_dir: Path,
    tmp: Path,
) -> dict[dg.AssetKey, dict[str, Any]]:
    out = tmp / "out"
    try:
        return run_module(
            context,
            python=airbyte.interpreter(),
            module="onering_airbyte.sync",
            cwd=AIRBYTE_ENV,
            extras={
                "connection": connection.resolved(source_dir),
                "out_dir": str(out),
                "work_dir": str(tmp / "work"),
            },
            env=airbyte.child_env(tmp / "work"),
        )
    except DagsterPipesExecutionError:
        error = out / ERROR_FILE
        reason = error.read_text() if error.is_file() else "see the step's output"
        raise dg.Failure(
            description=f"Airbyte connection {connection.name} ({connection.source}) failed: "
            f"{reason}",
            allow_retries=False,
        ) from None


def build_connection_asset(connection: Connection) -> dg.AssetsDefinition:
    streams = list(connection.streams)
    check_specs = [s for stream in streams for s in to_specs(key(connection, stream), DECLS)]

    @dg.multi_asset(
        name=f"airbyte__{connection.name}",
        specs=[spec(connection, s) for s in streams],
        check_specs=check_specs,
        can_subset=True,
        required_resource_keys={"lake", "source", "airbyte"},
        op_tags={"onering/layer": LAYER},
    )
    def _assets(context: AssetExecutionContext) -> Iterator[Any]:
        airbyte: AirbyteResource = context.resources.airbyte
        source: SourceResource = context.resources.source
        selected = [s for s in streams if key(connection, s) in context.selected_asset_keys]
        checked = [
            s
            for s in streams
            if any(c.asset_key == key(connection, s) for c in context.selected_asset_check_keys)
        ]
        if airbyte.url:  # a running Airbyte lands the data; dagster-airbyte drives it
            from onering_assets.airbyte.remote import check_on_instance, run_on_instance

            if selected:
                yield from run_on_instance(
                    context, airbyte, connection, selected, source.directory()
                )
            else:
                yield from check_on_instance(context, airbyte, connection, checked)
        elif selected:
            yield from _run_locally(context, airbyte, connection, selected, source.directory())
        else:  # checks alone: the published files against what was delivered
            yield from _check_lake(context, context.resources.lake, connection, checked)

    return _assets


def _run_locally(
    context: AssetExecutionContext,
    airbyte: AirbyteResource,
    connection: Connection,
    selected: list[str],
    source_dir: Path,
) -> Iterator[Any]:
    """PyAirbyte in the Airbyte environment; each stream landed once its check passes."""
    with tempfile.TemporaryDirectory(prefix="onering-airbyte-") as folder:
        tmp = Path(folder)
        reported = _run_sync(context, airbyte, connection, source_dir, tmp)
        produced = [
            _produced(connection, s, pq.read_table(tmp / "out" / f"{s}.parquet"), reported)
            for s in selected
        ]
    what = f"Airbyte connection {connection.name}"
    yield from land_checked(context, context.resources.lake, LAYER, DECLS, produced, what)


def _check_lake(
    context: AssetExecutionContext, lake: LakeResource, connection: Connection, streams: list[str]
) -> Iterator[Any]:
    for stream in streams:
        name = table_name(connection, stream)
        if not lake.exists(LAYER, name):
            outcomes = not_published([LANDED], f"{LAYER}/{name}")
        else:
            outcomes = [landed_outcome(lake.read(LAYER, name).num_rows, None)]
        yield from emit(context, key(connection, stream), DECLS, outcomes)


def _produced(
    connection: Connection,
    stream: str,
    data: pa.Table,
    reported: dict[dg.AssetKey, dict[str, Any]],
) -> Produced:
    """A stream's file, checked against the records the connector reported over Pipes."""
    meta = reported.get(key(connection, stream), {})
    delivered = meta.get("airbyte_records")
    value = getattr(delivered, "value", delivered)
    outcome = landed_outcome(data.num_rows, value if isinstance(value, int) else -1)
    return Produced(key(connection, stream), table_name(connection, stream), data, outcome, meta)


def build_airbyte_assets() -> list[dg.AssetsDefinition]:
    return [build_connection_asset(c) for c in load_connections()]

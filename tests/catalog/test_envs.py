"""The main and openmetadata environments stay apart, and `make setup` creates both.

openmetadata-ingestion pins ``antlr4-python3-runtime==4.9.2``, which breaks Dagster's selection
parser at run time, so it lives in ``envs/openmetadata`` and the main environment never imports
``metadata.*``: code that needs it runs there as a subprocess.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import tomllib
from pathlib import Path

import dagster as dg
import pytest

from onering_assets.settings import PROJECT_ROOT
from tests.catalog.dagster_fixture import OM_ENV, run_in_om_env

MAIN_PACKAGES = ("onering_assets", "airflow_bridge")
SELECTION = 'key:"gold/route_performance"'

CLIENT_AND_MODELS = """
import importlib.metadata as md, json
import onering_catalog
from metadata.ingestion.ometa.ometa_api import OpenMetadata
from metadata.generated.schema.api.data.createTable import CreateTableRequest
from metadata.generated.schema.api.lineage.addLineage import AddLineageRequest
from metadata.generated.schema.entity.data.container import Container
from metadata.generated.schema.type.entityLineage import ColumnLineage, LineageDetails
print(json.dumps({
    "openmetadata-ingestion": md.version("openmetadata-ingestion"),
    "antlr4": md.version("antlr4-python3-runtime"),
    "onering_catalog": onering_catalog.__file__,
    "client": OpenMetadata.__module__,
    "lineage_fields": sorted(LineageDetails.model_fields),
}))
"""

DAGSTER_SELECTION = f"""
import json, dagster as dg
try:
    dg.AssetSelection.from_string({SELECTION!r})
    print(json.dumps({{"error": None}}))
except Exception as err:
    print(json.dumps({{"error": f"{{type(err).__name__}}: {{err}}"}}))
"""


def _imports_metadata(tree: ast.AST) -> list[int]:
    """Lines importing ``metadata`` or ``metadata.*``, statically or through importlib."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = ast.unparse(node.func)
            dynamic = called in ("importlib.import_module", "import_module", "__import__")
            names = [str(node.args[0].value)] if dynamic else []
        else:
            continue
        if any(n == "metadata" or n.startswith("metadata.") for n in names):
            lines.append(node.lineno)
    return lines


def test_the_main_environment_has_no_openmetadata() -> None:
    assert importlib.util.find_spec("metadata") is None
    assert importlib.util.find_spec("onering_catalog") is None


def test_no_main_module_imports_metadata() -> None:
    files = [f for pkg in MAIN_PACKAGES for f in sorted((PROJECT_ROOT / pkg).rglob("*.py"))]
    assert len(files) > 50
    offenders = {
        str(f.relative_to(PROJECT_ROOT)): lines
        for f in files
        if (lines := _imports_metadata(ast.parse(f.read_text(), filename=str(f))))
    }
    assert offenders == {}


def test_the_scan_finds_every_form_of_import() -> None:
    source = (
        "import metadata\nfrom metadata.ingestion.ometa.ometa_api import OpenMetadata\n"
        "import importlib\nimportlib.import_module('metadata.generated')\n"
        "from onering_assets import metadata\nimport onering_assets.metadata\n"
    )
    assert _imports_metadata(ast.parse(source)) == [1, 2, 4]


def test_the_openmetadata_env_imports_the_client_and_models() -> None:
    found = run_in_om_env("-W", "ignore", "-c", CLIENT_AND_MODELS)
    assert found["openmetadata-ingestion"] == "2.0.7.0"
    assert found["client"] == "metadata.ingestion.ometa.ometa_api"
    assert Path(found["onering_catalog"]).parent == OM_ENV / "onering_catalog"
    assert {"pipeline", "columnsLineage", "sqlQuery"} <= set(found["lineage_fields"])
    assert found["antlr4"] == "4.9.2"


def test_its_antlr4_breaks_dagsters_selection_parser_which_the_main_env_parses() -> None:
    """Why the environments are apart: the same Dagster 1.13.27 fails to parse a selection
    with openmetadata-ingestion's antlr4 runtime (4.9.2) and parses it in the main env."""
    assert dg.AssetSelection.from_string(SELECTION) is not None
    result = run_in_om_env("-W", "ignore", "-c", DAGSTER_SELECTION)
    assert result["error"] == "TypeError: ord() expected string of length 1, but int found"


def test_make_setup_syncs_the_openmetadata_env_only_when_its_lock_changes() -> None:
    """`make -n -W F -o G` shows what a change of F alone would run (G as if unchanged),
    touching nothing. Each environment's stamp is remade for its own files only."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    main_files = ("uv.lock", "pyproject.toml")
    om_files = ("envs/openmetadata/uv.lock", "envs/openmetadata/pyproject.toml")

    def dry_run(changed: str, unchanged: tuple[str, ...]) -> str:
        options = ["-W", changed, *(arg for path in unchanged for arg in ("-o", path))]
        proc = subprocess.run(
            ["make", "--no-print-directory", "-n", *options, "setup"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return proc.stdout

    om_sync = "sync --project envs/openmetadata --frozen --compile-bytecode"
    for changed in om_files:
        commands = dry_run(changed, main_files)
        assert om_sync in commands
        assert "touch envs/openmetadata/.venv/.onering-synced" in commands
        if (PROJECT_ROOT / ".venv" / ".onering-synced").exists():
            assert "touch .venv/.onering-synced" not in commands
    if (OM_ENV / ".venv" / ".onering-synced").exists():
        assert om_sync not in dry_run("uv.lock", om_files)


def test_the_lock_pins_what_the_issue_requires() -> None:
    lock = tomllib.loads((OM_ENV / "uv.lock").read_text())
    versions = {package["name"]: package["version"] for package in lock["package"]}
    assert versions["openmetadata-ingestion"] == "2.0.7.0"
    assert versions["dagster-graphql"] == "1.13.27"  # the main env's webserver release
    major, minor = (int(p) for p in versions["dbt-core"].split(".")[:2])
    assert (major, minor) < (1, 12)

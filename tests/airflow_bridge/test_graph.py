"""The pure parts of the bridge: render config, graph plans, partition mapping."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_bridge.config import RenderConfig, load_config
from airflow_bridge.errors import BridgeError
from airflow_bridge.graph import plan_dags
from airflow_bridge.manifest import AssetNode, CheckNode, Manifest, loads
from airflow_bridge.partitions import partition_range

MONTHLY = {"start": "2013-01", "end": "2013-12", "fmt": "%Y-%m"}


def node(key: str, deps: tuple[str, ...] = (), partitioned: bool = True) -> AssetNode:
    return AssetNode(
        key=key,
        group=key.split("/")[0],
        deps=deps,
        partitions=MONTHLY if partitioned else None,
        checks=(CheckNode("not_empty", True),),
        owners=(),
        tags={},
        uri=f"onering://{key}",
    )


GRAPH = Manifest(
    "onering",
    (
        node("bronze/flights"),
        node("bronze/airlines", partitioned=False),
        node("silver/flights", ("bronze/flights",)),
        node("silver/airlines", ("bronze/airlines",), partitioned=False),
        node("gold/cmp", ("silver/airlines", "silver/flights")),
    ),
)


def test_one_dag_per_group_with_asset_aware_schedules() -> None:
    plans = {p.dag_id: p for p in plan_dags(GRAPH, RenderConfig())}
    assert list(plans) == ["onering_bronze", "onering_silver", "onering_gold"]
    assert plans["onering_bronze"].schedule is None
    assert plans["onering_gold"].schedule == "assets"
    assert plans["onering_gold"].schedule_assets == (
        "onering://silver/airlines",
        "onering://silver/flights",
    )
    assert [t.upstream for t in plans["onering_gold"].tasks] == [()]


def test_one_dag_wires_dependencies_inside_it() -> None:
    (plan,) = plan_dags(GRAPH, RenderConfig(grouping="one", schedules={"onering": "@daily"}))
    upstream = {t.task_id: t.upstream for t in plan.tasks}
    assert upstream["gold__cmp"] == ("silver__airlines", "silver__flights")
    assert plan.schedule == "@daily"
    order = [t.task_id for t in plan.tasks]
    assert (
        order.index("bronze__flights") < order.index("silver__flights") < order.index("gold__cmp")
    )


def test_checks_none_drops_checks_from_tasks() -> None:
    plans = plan_dags(GRAPH, RenderConfig(checks="none"))
    assert all(t.checks == () for p in plans for t in p.tasks)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (RenderConfig(grouping="asset"), "grouping 'asset'"),
        (RenderConfig(mode="remote"), "mode 'remote'"),
        (RenderConfig(checks="after"), "checks 'after'"),
        (RenderConfig(dag_prefix="on-ring"), "dag_prefix"),
        (RenderConfig(retries=-1), "retries"),
    ],
)
def test_invalid_config_is_one_clear_error(config: RenderConfig, message: str) -> None:
    with pytest.raises(BridgeError, match=message):
        config.validate()


def test_schedules_must_name_real_dags_and_assets_needs_upstream() -> None:
    with pytest.raises(BridgeError, match="unknown DAG"):
        plan_dags(GRAPH, RenderConfig(schedules={"onering_platinum": "@daily"}))
    with pytest.raises(BridgeError, match="needs upstream assets"):
        plan_dags(GRAPH, RenderConfig(schedules={"onering_bronze": "assets"}))


def test_cycles_are_refused() -> None:
    cyclic = Manifest("onering", (node("a/x", ("a/y",)), node("a/y", ("a/x",))))
    with pytest.raises(BridgeError, match="cycle"):
        plan_dags(cyclic, RenderConfig())


def test_load_config_refuses_unknown_settings(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yml"
    path.write_text("grouping: group\nschedual: daily\n")
    with pytest.raises(BridgeError, match="unknown setting"):
        load_config(path)


def test_manifest_round_trips_and_versions_are_checked() -> None:
    assert loads(GRAPH.dumps()) == GRAPH
    with pytest.raises(BridgeError, match="manifest version"):
        loads(GRAPH.dumps().replace('"version": 1', '"version": 9'))


@pytest.mark.parametrize(
    ("conf", "logical", "expected"),
    [
        ({}, None, ("2013-01", "2013-12")),
        ({}, datetime(2013, 3, 1, tzinfo=UTC), ("2013-03", "2013-03")),
        ({"partition": "2013-05"}, datetime(2013, 3, 1, tzinfo=UTC), ("2013-05", "2013-05")),
        ({"from": "2013-02", "to": "2013-04"}, None, ("2013-02", "2013-04")),
        ({"from": "2013-11"}, None, ("2013-11", "2013-12")),
    ],
)
def test_airflow_runs_map_to_dagster_partitions(
    conf: dict, logical: datetime | None, expected: tuple[str, str]
) -> None:
    assert partition_range(MONTHLY, conf, logical) == expected


def test_partition_mapping_errors_and_unpartitioned() -> None:
    assert partition_range(None, {"partition": "2013-01"}, None) is None
    with pytest.raises(BridgeError, match="outside"):
        partition_range(MONTHLY, {"partition": "2014-01"}, None)
    with pytest.raises(BridgeError, match="reversed"):
        partition_range(MONTHLY, {"from": "2013-05", "to": "2013-01"}, None)
    # Only a declared key exactly as written: no other spelling, nothing between keys.
    for near in ("2013-1", "2013-01-15", " 2013-01", "2013-13", "2012-12", "13-01", ""):
        with pytest.raises(BridgeError, match="outside"):
            partition_range(MONTHLY, {"from": near or "x", "to": "2013-02"}, None)
    decade = {"start": "2014-01-01", "end": "2023-12-31", "fmt": "%Y-%m-%d"}
    assert partition_range(decade, {"partition": "2020-02-29"}, None) == ("2020-02-29",) * 2
    with pytest.raises(BridgeError, match="outside"):
        partition_range(decade, {"partition": "2021-02-29"}, None)


def test_separate_checks_add_a_check_task_after_each_asset() -> None:
    plans = {p.dag_id: p for p in plan_dags(GRAPH, RenderConfig(checks="separate"))}
    tasks = {t.task_id: t for t in plans["onering_silver"].tasks}
    check_task = tasks["silver__flights__checks"]
    assert check_task.checks_only and check_task.upstream == ("silver__flights",)
    assert check_task.outlets == ()
    assert tasks["silver__flights"].checks  # the asset task still gates publication


def test_plans_round_trip_through_json() -> None:
    import json
    from dataclasses import asdict

    from airflow_bridge.graph import plan_to_dict

    config = RenderConfig(checks="separate", grouping="one")
    (plan,) = plan_dags(GRAPH, config)
    raw = json.loads(json.dumps(plan_to_dict(plan, config)))
    assert raw["plan"] == json.loads(json.dumps(asdict(plan)))
    assert RenderConfig(**raw["render"]) == config


DAILY = {"start": "2013-01-30", "end": "2013-02-02", "fmt": "%Y-%m-%d"}


def test_daily_partitions_map_and_a_partition_key_wins_over_the_date() -> None:
    march = datetime(2013, 3, 9, tzinfo=UTC)
    assert partition_range(DAILY, {}, None) == ("2013-01-30", "2013-02-02")
    assert partition_range(DAILY, {}, datetime(2013, 1, 31, tzinfo=UTC)) == ("2013-01-31",) * 2
    assert partition_range(DAILY, {"from": "2013-02-01"}, None) == ("2013-02-01", "2013-02-02")
    # An Airflow partition key (a partitioned DAG run) beats the run's date ...
    assert partition_range(MONTHLY, {}, march, "2013-07") == ("2013-07", "2013-07")
    # ... and conf beats both.
    assert partition_range(MONTHLY, {"partition": "2013-02"}, march, "2013-07") == (
        "2013-02",
        "2013-02",
    )
    with pytest.raises(BridgeError, match="not a %Y-%m-%d key"):
        partition_range(DAILY, {}, None, "2013-02")
    with pytest.raises(BridgeError, match=r"outside 2013-01-30\.\.2013-02-02"):
        partition_range(DAILY, {"partition": "2013-03-01"}, None)


def resolved(manifest: Manifest, config: RenderConfig) -> Manifest:
    """``manifest`` with ``config``'s selections resolved by Dagster, as export does."""
    import dagster as dg

    from airflow_bridge.export import selections

    specs = [
        dg.AssetSpec(
            dg.AssetKey.from_user_string(a.key),
            deps=[dg.AssetKey.from_user_string(d) for d in a.deps],
            group_name=a.group,
        )
        for a in manifest.assets
    ]

    @dg.multi_asset(specs=specs, can_subset=True)
    def everything():
        return None

    graph = dg.Definitions(assets=[everything]).resolve_asset_graph()
    return replace(manifest, selections=selections(graph, config))


def test_select_and_exclude_are_resolved_by_dagster_at_export() -> None:
    config = RenderConfig(select='+key:"gold/cmp"', exclude='key:"bronze/airlines"')
    plans = {p.dag_id: p for p in plan_dags(resolved(GRAPH, config), config)}
    keys = {k for p in plans.values() for t in p.tasks for k in t.asset_keys}
    assert keys == {"bronze/flights", "silver/flights", "silver/airlines", "gold/cmp"}
    # silver/airlines' upstream is not exported, so nothing waits for it.
    assert plans["onering_silver"].schedule_assets == ("onering://bronze/flights",)
    nothing = RenderConfig(select="group:nope")
    with pytest.raises(BridgeError, match="leave no assets"):
        plan_dags(resolved(GRAPH, nothing), nothing)
    with pytest.raises(BridgeError, match="cannot resolve selection 'group:silver and'"):
        resolved(GRAPH, RenderConfig(select="group:silver and"))
    # A plan never parses a selection: one export did not resolve is an error.
    with pytest.raises(BridgeError, match="was not resolved at export"):
        plan_dags(GRAPH, config)


def test_dags_per_selection_and_tasks_per_group() -> None:
    config = RenderConfig(
        grouping="selection",
        dags={"core": "group:bronze or group:silver", "marts": "group:gold"},
        tasks="group",
    )
    plans = {p.dag_id: p for p in plan_dags(resolved(GRAPH, config), config)}
    assert list(plans) == ["core", "marts"]
    core = {t.task_id: t for t in plans["core"].tasks}
    assert list(core) == ["bronze", "silver"]
    assert core["silver"].upstream == ("bronze",)
    assert core["silver"].asset_keys == ("silver/airlines", "silver/flights")
    assert core["silver"].outlets == ("onering://silver/airlines", "onering://silver/flights")
    assert core["silver"].partitions == MONTHLY  # the group's partitioned assets
    assert plans["marts"].schedule == "assets"
    overlapping = RenderConfig(grouping="selection", dags={"a": "*", "b": "group:gold"})
    with pytest.raises(BridgeError, match="in several DAGs"):
        plan_dags(resolved(GRAPH, overlapping), overlapping)
    with pytest.raises(BridgeError, match="go together"):
        RenderConfig(grouping="selection").validate()
    with pytest.raises(BridgeError, match="tasks 'dag'"):
        RenderConfig(tasks="dag").validate()


def test_partitioned_dags_get_partitioned_airflow_timetables() -> None:
    from dataclasses import asdict

    from airflow.sdk import CronPartitionTimetable, PartitionedAssetTimetable

    from airflow_bridge.dag import schedule_of

    config = RenderConfig(schedules={"onering_bronze": "@monthly"})
    plans = {p.dag_id: p for p in plan_dags(GRAPH, config)}
    bronze = schedule_of(asdict(plans["onering_bronze"]))
    assert isinstance(bronze, CronPartitionTimetable)
    assert (bronze.key_format, bronze.run_offset) == ("%Y-%m", -1)  # the month that closed
    assert isinstance(schedule_of(asdict(plans["onering_gold"])), PartitionedAssetTimetable)
    unpartitioned = Manifest("o", (node("bronze/a", partitioned=False),))
    (plan,) = plan_dags(unpartitioned, RenderConfig(schedules={"onering_bronze": "@daily"}))
    assert schedule_of(asdict(plan)) == "@daily"


def test_stale_or_foreign_plan_files_fail_with_what_to_run(tmp_path: Path) -> None:
    import json

    from airflow_bridge.dag import load_dag
    from airflow_bridge.formats import PLAN_VERSION

    plan = tmp_path / "onering_x.plan.json"
    with pytest.raises(BridgeError, match="missing; run `onering airflow export`"):
        load_dag(plan)
    plan.write_text(json.dumps({"version": 1, "plan": {}, "render": {}}))
    with pytest.raises(BridgeError, match=f"plan version 1, this bridge reads {PLAN_VERSION}"):
        load_dag(plan)
    plan.write_text(json.dumps({"version": PLAN_VERSION, "plan": {"dag_id": "x"}, "render": {}}))
    with pytest.raises(BridgeError, match="not a OneRing DAG plan"):
        load_dag(plan)


@pytest.mark.parametrize(
    ("cron", "spec", "every_partition"),
    [
        ("@monthly", MONTHLY, True),
        ("0 6 1 * *", MONTHLY, True),
        ("@daily", MONTHLY, True),
        ("@yearly", MONTHLY, False),
        ("@daily", DAILY, True),
        ("30 3 * * *", DAILY, True),
        ("@hourly", DAILY, True),
    ],
)
def test_a_cron_window_holds_the_runs_of_the_declared_partitions_and_no_other(
    cron: str, spec: dict[str, str], every_partition: bool
) -> None:
    """Checked against Airflow's own timetable: every run between the window's first and
    last run builds a declared partition, every run outside it one that is not declared."""
    from datetime import timedelta

    import pendulum
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronPartitionTimetable

    from airflow_bridge.partitions import cron_window, keys

    window = cron_window("d", cron, spec)
    first = datetime.fromisoformat(window["first_run"])
    last = datetime.fromisoformat(window["last_run"])
    timetable = CronPartitionTimetable(  # pyright: ignore[reportAbstractUsage]
        cron, timezone="UTC", run_offset=-1, key_format=spec["fmt"]
    )
    # Airflow passes pendulum times (its hourly crons need them).
    earliest, latest = (
        pendulum.instance(t) for t in (first - timedelta(days=40), last + timedelta(days=40))
    )
    around = TimeRestriction(earliest, latest, catchup=True)
    inside, outside, info = set(), set(), None
    while info := timetable.next_dagrun_info_v2(last_dagrun_info=info, restriction=around):
        (inside if first <= info.run_after <= last else outside).add(info.partition_key)
    declared = set(keys(spec))
    assert inside <= declared and not outside & declared
    assert (inside == declared) is every_partition


def test_a_cron_that_closes_no_partition_is_refused_at_export() -> None:
    from airflow_bridge.partitions import cron_window

    with pytest.raises(
        BridgeError, match=r"closes none of the partitions 2013-01-30\.\.2013-02-02"
    ):
        cron_window("d", "@yearly", DAILY)
    with pytest.raises(BridgeError, match="'every day' is not a cron expression"):
        cron_window("d", "every day", MONTHLY)

"""select(): Dagster's asset selection syntax without Dagster, checked against Dagster itself."""

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from airflow_bridge.config import RenderConfig
from airflow_bridge.errors import BridgeError
from airflow_bridge.export import snapshot
from airflow_bridge.manifest import AssetNode
from airflow_bridge.selection import select
from onering_assets.definitions import build_definitions
from onering_assets.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")

ERROR = "error"  # the outcome of an expression Dagster (or select) rejects


def dagster_outcome(expr: str, graph, keys: set[str]) -> set[str] | str:
    """Dagster's answer, restricted to the manifest's keys, or ERROR."""
    try:
        selected = dg.AssetSelection.from_string(expr).resolve(graph)
    except Exception:
        return ERROR
    assert all(isinstance(k, dg.AssetKey) for k in selected)  # asset keys, never checks
    return {k.to_user_string() for k in selected} & keys


def our_outcome(expr: str, nodes: Sequence[AssetNode]) -> set[str] | str:
    try:
        return select(expr, nodes)
    except BridgeError:
        return ERROR


# ---------------------------------------------------------------------------------------
# The project's real asset graph
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    graph: object
    nodes: tuple[AssetNode, ...]
    keys: set[str]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    state_dir: Path = tmp_path_factory.mktemp("selection_state")
    defs = build_definitions(Settings(profile="local", state_dir=state_dir))
    graph = defs.resolve_asset_graph()
    nodes = snapshot(defs, RenderConfig()).assets
    assert any(n.kinds for n in nodes)  # the manifest carries kinds for `kind:`
    keys = {n.key for n in nodes}
    assert keys == {k.to_user_string() for k in graph.materializable_asset_keys}
    return Project(graph, nodes, keys)


REAL_EXPRESSIONS = [
    # all, keys and key wildcards
    "*",
    "(*)",
    'key:"silver/flights"',
    "key:silver/flights",
    'key:"silver/*"',
    "key:*/flights",
    "key:*weather*",
    'key:"*"',
    "key:silver/no_such_table",
    # groups, tags, owners, kinds
    "group:silver",
    'group:"s*"',
    'group:"*"',
    "group:<null>",
    "tag:layer=gold",
    'tag:"store"="clickhouse"',
    "tag:layer",
    "tag:layer=<null>",
    'tag:"dagster/kind/parquet"',
    "tag:team:data",
    'owner:"team:flight-analytics"',
    "owner:<null>",
    "kind:postgres",
    "kind:parquet or kind:clickhouse",
    "kind:<null>",
    "is:materializable",
    "is:external",
    # and / or / not, precedence, parentheses
    'group:silver and not key:"silver/weather"',
    'tag:layer=gold or owner:"team:data-platform"',
    "not group:bronze",
    "not not group:bronze",
    "not group:bronze and not group:gold",
    "group:bronze or group:silver and tag:store=lake",
    "(group:bronze or group:silver) and tag:store=lake",
    "NOT group:gold AND kind:clickhouse OR key:bronze/planes",
    "not (group:bronze or group:gold)",
    # traversals
    '+key:"gold/route_performance"',
    "1+key:gold/carrier_monthly_performance",
    "2+key:gold/carrier_monthly_performance",
    "0+key:silver/flights",
    "key:bronze/flights+",
    "key:bronze/flights+1",
    "+key:silver/flights+",
    "1+key:silver/flights+1",
    "2 + key:silver/weather + 1",
    "+(group:gold and kind:postgres)",
    "tag:layer=silver+ and not group:silver",
    "not +key:gold/route_performance",
    "+(*)",
    # functions
    "sinks(*)",
    "roots(*)",
    "sinks(group:silver)",
    "roots(+key:gold/airport_daily_weather)",
    "+sinks(group:bronze)+1",
    "roots(key:silver/flights+) or sinks(not group:gold)",
    # Dagster's older syntax, which from_string falls back to
    "bronze/flights+",
    "*silver/weather",
    "++gold/route_performance",
    "  silver/airlines  ",
]


@pytest.mark.parametrize("expr", REAL_EXPRESSIONS)
def test_matches_dagster_on_the_project_graph(project: Project, expr: str) -> None:
    expected = dagster_outcome(expr, project.graph, project.keys)
    assert expected != ERROR, "this expression is meant to be valid"
    assert select(expr, project.nodes) == expected


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "key:*",  # `*` alone lexes as STAR, not as a key pattern
        "group:sil*",  # wildcards are only unquoted in key: values
        "owner:team:flight-analytics",  # must be quoted
        "key:silver/flights key:gold/route_performance",
        "key:silver/flights and",
        "(group:silver",
        "group:silver)",
        "+*",
        "key:silver/flights++",
        "key:a.b",
        'key:"unterminated',
        "key:key",
        "group:AND",  # operators are keywords in lower case or capitals ("And" is a value)
        "is:sometimes",
        "silver_flights",  # legacy syntax, but no such asset
        "*silver/flightz+",
        "sinks key:silver/flights",
        "tag:a=b=c",
    ],
)
def test_rejects_what_dagster_rejects(project: Project, expr: str) -> None:
    assert dagster_outcome(expr, project.graph, project.keys) == ERROR
    with pytest.raises(BridgeError, match="Invalid asset selection"):
        select(expr, project.nodes)


def test_syntax_error_points_at_the_problem(project: Project) -> None:
    with pytest.raises(BridgeError) as err:
        select("owner:team:flight-analytics", project.nodes)
    message = str(err.value)
    assert "column 11" in message
    assert "  owner:team:flight-analytics\n            ^" in message
    assert 'owner:"team:data-platform"' in message  # how to quote
    with pytest.raises(BridgeError, match=r'write `\*` or key:"\*"'):
        select("key:*", project.nodes)
    with pytest.raises(BridgeError, match="Did you mean silver/flights"):
        select("silver/flightz", project.nodes)


@pytest.mark.parametrize(
    "expr, attribute",
    [
        ("status:MISSING", "status"),
        ("code_location:onering", "code_location"),
        ("column:carrier", "column"),
        ("table_name:flights", "table_name"),
        ('column_tag:pii="yes"', "column_tag"),
        ("changed_in_branch:main", "changed_in_branch"),
        ("partitions:time", "partitions"),
        ("automation_type:cron", "automation_type"),
        ("sensor:my_sensor", "sensor"),
        ("schedule:daily", "schedule"),
        ("job:all_assets", "job"),
        ("group:silver and +(not column:carrier)", "column"),
    ],
)
def test_unsupported_attributes_name_themselves(
    project: Project, expr: str, attribute: str
) -> None:
    with pytest.raises(BridgeError) as err:
        select(expr, project.nodes)
    message = str(err.value)
    assert f"`{attribute}:` is not supported" in message
    assert "Supported: key:, tag:, owner:, group:, kind:, is:, sinks(), roots()" in message


def test_a_broken_tag_expression_is_an_error_not_an_empty_selection(project: Project) -> None:
    # Dagster's fallback reads this as tag "layer" == "gold or owner:team:data" (nothing).
    expr = "tag:layer=gold or owner:team:data"
    assert dagster_outcome(expr, project.graph, project.keys) == set()
    with pytest.raises(BridgeError, match="one literal tag"):
        select(expr, project.nodes)


@pytest.mark.parametrize("expr", ["key:gold/nothing", "tag:layer=platinum", "group:<null>"])
def test_selecting_nothing_is_empty_not_an_error(project: Project, expr: str) -> None:
    assert select(expr, project.nodes) == set()


# ---------------------------------------------------------------------------------------
# A synthetic graph: deeper chains, external assets, every kind of value
# ---------------------------------------------------------------------------------------


def node(
    key: str,
    deps: Sequence[str] = (),
    group: str = "default",
    owners: Sequence[str] = (),
    tags: dict[str, str] | None = None,
    kinds: Sequence[str] = (),
) -> AssetNode:
    return AssetNode(
        key=key,
        group=group,
        deps=tuple(deps),
        partitions=None,
        checks=(),
        owners=tuple(owners),
        tags=dict(tags or {}),
        uri=f"onering://{key}",
        kinds=tuple(kinds),
    )


# ext/src -> a -> b -> c -> d -> e, with x -> c and e -> f, c -> g; ext/side -> g
SYNTHETIC = (
    node("chain/a", ["ext/src"], "raw", ["team:ingest"], {"layer": "raw", "pii": ""}, ["python"]),
    node("chain/b", ["chain/a"], "raw", ["team:ingest", "a@b.com"], {"layer": "raw"}, ["s3"]),
    node("chain/c", ["chain/b", "side/x"], "mid", ["team:core"], {"layer": "mid"}, ["duckdb"]),
    node("chain/d", ["chain/c"], "mid", [], {"layer": "mid", "pii": "yes"}),
    node("chain/e", ["chain/d"], "mid_2", [], {"tier": "1", "sensor": "job"}),
    node("chain/f", ["chain/e"], "top", ["team:core"], {}, ["duckdb", "python"]),
    node("chain/g", ["chain/c", "ext/side"], "top", [], {"dagster/kind/custom": ""}),
    node("side/x", [], "sensor"),
)
EXTERNAL = ("ext/src", "ext/side")
SYNTHETIC_KEYS = {n.key for n in SYNTHETIC}


@pytest.fixture(scope="module")
def synthetic_graph():
    """The same graph in Dagster: one subsettable multi-asset plus external assets."""
    specs = [
        dg.AssetSpec(
            dg.AssetKey.from_user_string(n.key),
            deps=[dg.AssetKey.from_user_string(d) for d in n.deps],
            group_name=n.group,
            owners=list(n.owners),
            tags=n.tags,
            kinds=set(n.kinds),
        )
        for n in SYNTHETIC
    ]

    @dg.multi_asset(specs=specs, can_subset=True)
    def everything():
        return None

    externals = [dg.AssetSpec(dg.AssetKey.from_user_string(key)) for key in EXTERNAL]
    return dg.Definitions(assets=[everything, *externals]).resolve_asset_graph()


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("2+key:chain/e", {"chain/c", "chain/d", "chain/e"}),
        ("key:chain/b+2", {"chain/b", "chain/c", "chain/d", "chain/g"}),
        ("2+key:chain/e+1", {"chain/c", "chain/d", "chain/e", "chain/f"}),
        ("3+key:chain/e", {"chain/b", "chain/c", "chain/d", "chain/e", "side/x"}),
        ("1+key:chain/c", {"chain/b", "chain/c", "side/x"}),
        ("+key:chain/c", {"chain/a", "chain/b", "chain/c", "side/x"}),  # ext/src is external
        ("key:chain/e+", {"chain/e", "chain/f"}),
        ("key:side/x+1", {"side/x", "chain/c"}),
        ("key:ext/src+1", {"chain/a"}),  # external assets are traversed, never returned
        ("key:ext/*+1", {"chain/a", "chain/g"}),
        ('key:"ext/*"', set()),
        ("is:external+1", {"chain/a", "chain/g"}),
        ("sinks(*)", {"chain/f", "chain/g"}),
        ("roots(*)", {"chain/a", "side/x"}),
        ("roots(group:mid or group:top)", {"chain/c"}),
        ("sinks(2+key:chain/e)", {"chain/e"}),
        ("tag:pii", {"chain/a"}),  # tag:k matches an empty value, not "has tag k"
        ("tag:pii=yes", {"chain/d"}),
        ("kind:duckdb", {"chain/c", "chain/f"}),
        ("kind:custom", {"chain/g"}),
        ('owner:"a@b.com"', {"chain/b"}),
        ("group:sensor", {"side/x"}),  # `sensor` is a keyword token, and a valid value
        ("tag:sensor=job", {"chain/e"}),
    ],
)
def test_synthetic_graph(synthetic_graph, expr: str, expected: set[str]) -> None:
    assert select(expr, SYNTHETIC) == expected
    assert dagster_outcome(expr, synthetic_graph, SYNTHETIC_KEYS) == expected


class ExpressionGenerator:
    """Random valid selection expressions over SYNTHETIC, and single-character edits."""

    VALUES: ClassVar[dict[str, list[str]]] = {
        "key": ["chain/a", '"chain/c"', "chain/*", "*/x", '"*"', "ext/src", "*e*", "nope"],
        "group": ["raw", "mid", "mid_2", "top", "sensor", '"mid*"', '"*"', "<null>", '""'],
        "owner": ['"team:core"', '"team:ingest"', '"a@b.com"', "<null>"],
        "kind": ["python", "duckdb", "s3", "custom", "<null>"],
        "is": ["materializable", "external"],
        "tag": ["layer", "layer=raw", "pii", 'pii="yes"', "tier=<null>", "sensor=job"],
    }

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def expression(self, depth: int = 0) -> str:
        parts = [self.unary(depth)]
        while self.rng.random() < 0.45 and depth < 4:
            parts += [self.rng.choice([" and ", " or ", " AND ", " OR "]), self.unary(depth)]
        return "".join(parts)

    def unary(self, depth: int) -> str:
        if self.rng.random() < 0.15:
            return "not " + self.unary(depth)
        if self.rng.random() < 0.08:
            return "*"
        up = self.rng.choice(["", "", "+", "1+", "2+", "0+"])
        down = self.rng.choice(["", "", "+", "+1", "+2", "+0"])
        return up + self.primary(depth) + down

    def primary(self, depth: int) -> str:
        roll = self.rng.random()
        if roll < 0.15 and depth < 3:
            return f"{self.rng.choice(['sinks', 'roots'])}({self.expression(depth + 1)})"
        if roll < 0.3 and depth < 3:
            return f"({self.expression(depth + 1)})"
        attribute = self.rng.choice(list(self.VALUES))
        return f"{attribute}:{self.rng.choice(self.VALUES[attribute])}"

    def edit(self, expr: str) -> str:
        at = self.rng.randrange(len(expr) + 1)
        if self.rng.random() < 0.4:
            return expr[:at] + expr[at + 1 :]
        return expr[:at] + self.rng.choice('+*()": =2ab/') + expr[at:]


def test_dagster_and_select_agree_on_generated_expressions(synthetic_graph) -> None:
    """A differential check: random valid expressions, then random single-character edits."""
    generator = ExpressionGenerator(seed=20240601)
    generated = [generator.expression() for _ in range(250)]
    mismatches = []
    for expr in generated + [generator.edit(e) for e in generated]:
        expected = dagster_outcome(expr, synthetic_graph, SYNTHETIC_KEYS)
        actual = our_outcome(expr, SYNTHETIC)
        # Deliberate: a broken `tag:...` string is an error, not Dagster's literal tag.
        deliberate = expr.startswith("tag:") and expected == set() and actual == ERROR
        if actual != expected and not deliberate:
            mismatches.append((expr, expected, actual))
    assert not mismatches
    assert sum(bool(our_outcome(e, SYNTHETIC)) for e in generated) > 150  # not all empty


def test_kinds_are_read_when_the_node_has_them() -> None:
    plain = AssetNode("a/b", "g", (), None, (), (), {}, "onering://a/b")
    kinded = node("a/c", kinds=["duckdb"])
    assert select("kind:duckdb", [plain, kinded]) == {"a/c"}
    assert select('tag:"dagster/kind/duckdb"', [plain, kinded]) == {"a/c"}


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(BridgeError):
        select("(" * 5000 + "*" + ")" * 5000, SYNTHETIC)


def test_ten_thousand_assets_resolve_fast() -> None:
    n = 10_000
    nodes = [
        AssetNode(
            key=f"layer{i % 5}/table{i}",
            group=f"group{i % 20}",
            deps=tuple(f"layer{j % 5}/table{j}" for j in {i - 1, i // 2} if 0 <= j < i),
            partitions=None,
            checks=(),
            owners=(f"team:t{i % 7}",),
            tags={"layer": f"l{i % 5}"},
            uri="",
        )
        for i in range(n)
    ]
    expressions = [
        "group:group3",
        "key:layer4/table9999",
        "+key:layer4/table9999",
        "key:layer0/table0+",
        "tag:layer=l2 and not group:group4",
        'key:"*table99*"',
        "sinks(*)",
        'owner:"team:t3" or kind:<null>',
    ]
    for expr in expressions:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            select(expr, nodes)
            best = min(best, time.perf_counter() - start)
        assert best < 0.1, f"{expr}: {best * 1000:.0f} ms"
    assert len(select("+key:layer4/table9999", nodes)) > 10
    assert select("key:layer0/table0+", nodes) == {a.key for a in nodes}

"""The dagster_graphql mode's selection subset, checked against Dagster itself.

Only that mode resolves selections without Dagster (see airflow_bridge/selection.py);
within its subset, every answer must be Dagster's, and the rest must be refused clearly.
"""

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest
from dagster._core.definitions.antlr_asset_selection.antlr_asset_selection import (
    AntlrAssetSelectionParser,
)

from airflow_bridge.config import RenderConfig
from airflow_bridge.errors import BridgeError
from airflow_bridge.export import snapshot
from airflow_bridge.manifest import AssetNode
from airflow_bridge.selection import select
from onering_assets.definitions import build_definitions
from onering_assets.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")

ERROR = "error"  # the outcome of an expression Dagster's grammar (or select) rejects
UNSUPPORTED = "unsupported"  # outside the subset: select refuses it by name


def dagster_outcome(expr: str, graph, keys: set[str]) -> set[str] | str:
    """Dagster's grammar's answer (no fallback to its older syntax), or ERROR."""
    try:
        selected = AntlrAssetSelectionParser(expr).asset_selection.resolve(graph)
    except Exception:
        return ERROR
    assert all(isinstance(k, dg.AssetKey) for k in selected)  # asset keys, never checks
    return {k.to_user_string() for k in selected} & keys


def our_outcome(expr: str, nodes: Sequence[AssetNode]) -> set[str] | str:
    try:
        return select(expr, nodes)
    except BridgeError as err:
        return UNSUPPORTED if "not supported by the dagster_graphql mode" in str(err) else ERROR


# ---------------------------------------------------------------------------------------
# The project's real asset graph
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    graph: Any
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
    "tag:layer=gold",
    'tag:"store"="clickhouse"',
    "tag:layer",
    'tag:"dagster/kind/parquet"',
    'owner:"team:flight-analytics"',
    "kind:postgres",
    "kind:parquet or kind:clickhouse",
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
    # what the bridge itself sends (a conf select narrowed to a task's keys)
    '(+key:"gold/route_performance") and (key:"silver/flights" or key:"bronze/flights")',
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
        "tag:a=b=c",
        "2key:silver/flights",
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


@pytest.mark.parametrize(
    "expr, what",
    [
        ("status:MISSING", "`status:`"),
        ("is:materializable", "`is:`"),
        ("column:carrier", "`column:`"),
        ("code_location:onering", "`code_location:`"),
        ("sensor:my_sensor", "`sensor:`"),
        ("group:silver and +(not column:carrier)", "`column:`"),
        ("sinks(*)", "`sinks(`"),
        ("roots(group:silver)", "`roots(`"),
        ("group:<null>", "<null>"),
        ("kind:<null>", "<null>"),
    ],
)
def test_what_the_subset_leaves_out_is_refused_by_name(
    project: Project, expr: str, what: str
) -> None:
    AntlrAssetSelectionParser(expr)  # valid in Dagster's grammar (it raises otherwise)
    with pytest.raises(BridgeError) as err:
        select(expr, project.nodes)
    message = str(err.value)
    assert f"{what} is not supported by the dagster_graphql mode" in message
    assert "in_process and subprocess modes take all of Dagster's syntax" in message


@pytest.mark.parametrize("expr", ["bronze/flights+", "*silver/weather", "silver/airlines"])
def test_dagsters_older_syntax_is_refused_with_the_new_spelling(
    project: Project, expr: str
) -> None:
    assert dg.AssetSelection.from_string(expr).resolve(project.graph)  # Dagster's fallback
    with pytest.raises(BridgeError, match="older `\\*key\\+` syntax is not supported here"):
        select(expr, project.nodes)


@pytest.mark.parametrize("expr", ["key:gold/nothing", "tag:layer=platinum", "kind:nope"])
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
        "group": ["raw", "mid", "mid_2", "top", "sensor", '"mid*"', '"*"', '""'],
        "owner": ['"team:core"', '"team:ingest"', '"a@b.com"'],
        "kind": ["python", "duckdb", "s3", "custom"],
        "tag": ["layer", "layer=raw", "pii", 'pii="yes"', "sensor=job"],
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
        if self.rng.random() < 0.2 and depth < 3:
            return f"({self.expression(depth + 1)})"
        attribute = self.rng.choice(list(self.VALUES))
        return f"{attribute}:{self.rng.choice(self.VALUES[attribute])}"

    def edit(self, expr: str) -> str:
        at = self.rng.randrange(len(expr) + 1)
        if self.rng.random() < 0.4:
            return expr[:at] + expr[at + 1 :]
        return expr[:at] + self.rng.choice('+*()": =2ab/') + expr[at:]


def test_dagster_and_select_agree_on_generated_expressions(synthetic_graph) -> None:
    """A differential check: random expressions of the subset, then single-character edits.

    Within the subset the answer (or the rejection) must be Dagster's. An edit may leave
    the subset (``sinks(``, ``<null>``...): then select must refuse it by name, never guess.
    """
    generator = ExpressionGenerator(seed=20240601)
    generated = [generator.expression() for _ in range(250)]
    mismatches, refused = [], 0
    for expr in generated + [generator.edit(e) for e in generated]:
        expected = dagster_outcome(expr, synthetic_graph, SYNTHETIC_KEYS)
        actual = our_outcome(expr, SYNTHETIC)
        refused += actual == UNSUPPORTED
        if actual != expected and actual != UNSUPPORTED:
            mismatches.append((expr, expected, actual))
    assert not mismatches
    assert all(our_outcome(e, SYNTHETIC) != UNSUPPORTED for e in generated)
    assert refused < 25  # edits rarely leave the subset; most are compared
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
        'owner:"team:t3" or kind:duckdb',
        "not group:group4 and key:layer1/*",
    ]
    for expr in expressions:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            select(expr, nodes)
            best = min(best, time.perf_counter() - start)
        # A guard against quadratic resolution (seconds at this size), not a benchmark: the
        # bound leaves room for a loaded CI machine running two test workers.
        assert best < 0.5, f"{expr}: {best * 1000:.0f} ms"
    assert len(select("+key:layer4/table9999", nodes)) > 10
    assert select("key:layer0/table0+", nodes) == {a.key for a in nodes}

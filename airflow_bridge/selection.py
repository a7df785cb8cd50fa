"""A subset of Dagster's asset selection syntax, resolved over the manifest without Dagster.

Why this exists: everywhere Dagster is installed, Dagster resolves selections itself
(export resolves bridge.yml's, the ``in_process`` worker and the ``onering`` CLI behind
``subprocess`` resolve ``dag_run.conf``'s). The ``dagster_graphql`` mode is the exception:
its Airflow worker has no Dagster, and Dagster 1.13's GraphQL launch takes a list of
asset keys, not a selection string. So a ``select`` in ``dag_run.conf`` is resolved
here, over the exported manifest, for that mode only.

Supported (the same answer as ``AssetSelection.from_string(expr).resolve(graph)``,
checked by tests/airflow_bridge/test_selection.py against Dagster)::

    expr     := and ("or" and)*              "and"/"or"/"not" also in capitals
    and      := unary ("and" unary)*
    unary    := "not" unary | "*" | [DIGITS? "+"] primary ["+" DIGITS?]
    primary  := "(" expr ")" | ATTR ":" value ["=" value]    (``=`` for tag: only)
    ATTR     := key | group | tag | kind | owner
    value    := "quoted" | unquoted [a-zA-Z_][a-zA-Z0-9_/]*  (``*`` wildcards in key:)

Refused with a message that says so: every other attribute (``status:``, ``is:``,
``column:``...), ``sinks()``/``roots()``, ``<null>`` and Dagster's older ``*key+``
syntax. The ``in_process`` and ``subprocess`` modes accept all of Dagster's syntax.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from airflow_bridge.errors import BridgeError
from airflow_bridge.manifest import AssetNode

__all__ = ["SUPPORTED", "select"]

SUPPORTED = "key:, group:, tag:, kind:, owner:, *, and, or, not, ( ), +x, N+x, x+, x+N"
ATTRIBUTES = ("key", "group", "tag", "kind", "owner")
# Words Dagster's lexer reads as keywords: never a bare value (except these three).
_DAGSTER_KEYWORDS = {
    *ATTRIBUTES,
    *("is", "status", "column", "table_name", "column_tag", "code_location"),
    *("changed_in_branch", "partitions", "automation_type", "sinks", "roots"),
}
_OPERATORS = {"and": "and", "AND": "and", "or": "or", "OR": "or", "not": "not", "NOT": "not"}
_TOKEN = re.compile(
    r'\s*(?:(?P<quoted>"[^"\\\r\n]*")|(?P<word>[a-zA-Z_*][a-zA-Z0-9_*/]*)|(?P<digits>\d+)'
    r"|(?P<punct>[:=+()])|(?P<null><null>)|(?P<other>\S))"
)
_KIND_TAG = "dagster/kind/"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # quoted, word, digits, punct, null, other, end
    text: str
    pos: int


def _tokens(expression: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None:  # only trailing whitespace is left
            break
        kind = match.lastgroup or "other"
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(_Token("end", "", len(expression)))
    return tokens


class _Graph:
    """The manifest indexed once per call; keys only seen as deps are external assets."""

    def __init__(self, assets: Iterable[AssetNode]) -> None:
        self.nodes = {node.key: node for node in assets}
        self.parents: dict[str, Sequence[str]] = {k: n.deps for k, n in self.nodes.items()}
        self.children: dict[str, list[str]] = {}
        for key, deps in self.parents.items():
            for dep in deps:
                self.children.setdefault(dep, []).append(key)
        self.all_keys = set(self.nodes) | set(self.children)

    def tags(self, node: AssetNode) -> dict[str, str]:
        return {**node.tags, **{_KIND_TAG + kind: "" for kind in node.kinds}}

    @staticmethod
    def reach(start: Iterable[str], edges: Mapping[str, Sequence[str]], depth: float) -> set[str]:
        """Keys at most ``depth`` edges from ``start`` (at least one): breadth first."""
        seen: set[str] = set()
        frontier, level = list(start), 0
        while frontier and level < depth:
            frontier = [o for k in frontier for o in edges.get(k, ()) if o not in seen]
            seen.update(frontier)
            level += 1
        return seen


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace("\\*", ".*") + "$")


def _attribute(graph: _Graph, name: str, value: str, tag_value: str) -> set[str]:
    """The keys one ``name:value`` picks (``key:`` also matches external assets)."""
    if name == "key":
        return {k for k in graph.all_keys if _wildcard(value).match(k)}
    nodes = graph.nodes.values()
    if name == "group":
        return {n.key for n in nodes if _wildcard(value).match(n.group)}
    if name == "owner":
        return {n.key for n in nodes if value in n.owners}
    if name == "kind":
        return {n.key for n in nodes if _KIND_TAG + value in graph.tags(n)}
    return {n.key for n in nodes if graph.tags(n).get(value) == tag_value}


class _Parser:
    """Recursive descent that evaluates as it parses (the subset needs no tree)."""

    def __init__(self, expression: str, graph: _Graph) -> None:
        self.expression = expression
        self.graph = graph
        self.tokens = _tokens(expression)
        self.at = 0

    def parse(self) -> set[str]:
        result = self._or()
        if self._peek().kind != "end":
            raise self._error("'and', 'or' or the end")
        return result

    def _peek(self) -> _Token:
        return self.tokens[self.at]

    def _take(self, kind: str, text: str | None = None) -> _Token | None:
        token = self._peek()
        if token.kind == kind and (text is None or token.text == text):
            self.at += 1
            return token
        return None

    def _operator(self, name: str) -> bool:
        token = self._peek()
        if token.kind == "word" and _OPERATORS.get(token.text) == name:
            self.at += 1
            return True
        return False

    def _or(self) -> set[str]:
        result = self._and()
        while self._operator("or"):
            result |= self._and()
        return result

    def _and(self) -> set[str]:
        result = self._unary()
        while self._operator("and"):
            result &= self._unary()
        return result

    def _unary(self) -> set[str]:
        if self._operator("not"):
            return set(self.graph.nodes) - self._unary()
        if self._take("word", "*"):
            return set(self.graph.nodes)
        up: float | None = None
        digits = self._take("digits")
        if digits:
            if not self._take("punct", "+"):
                raise self._error("'+' after a traversal depth")
            up = int(digits.text)
        elif self._take("punct", "+"):
            up = float("inf")
        picked = self._primary()
        down: float | None = None
        if self._take("punct", "+"):
            digits = self._take("digits")
            down = int(digits.text) if digits else float("inf")
        return self._traverse(picked, up, down)

    def _traverse(self, picked: set[str], up: float | None, down: float | None) -> set[str]:
        if up is None and down is None:
            return picked & set(self.graph.all_keys)
        graph, result = self.graph, set()
        if up is not None and picked:
            # As Dagster: walking upstream keeps only materializable assets.
            result |= (picked | graph.reach(picked, graph.parents, up)) & set(graph.nodes)
        if down is not None:
            result |= picked | graph.reach(picked, graph.children, down)
        return result

    def _primary(self) -> set[str]:
        if self._take("punct", "("):
            inner = self._or()
            if not self._take("punct", ")"):
                raise self._error("')'")
            return inner
        token = self._peek()
        following = self.tokens[min(self.at + 1, len(self.tokens) - 1)].text
        known = _DAGSTER_KEYWORDS | {"sensor", "schedule", "job"}
        if following in (":", "(") and token.text in known - set(ATTRIBUTES):
            raise self._unsupported(f"`{token.text}{following}`")
        if token.kind != "word" or token.text not in ATTRIBUTES or following != ":":
            raise self._error(
                "an attribute (key:, group:, tag:, kind:, owner:), 'not', '*' or '(' "
                '(Dagster\'s older `*key+` syntax is not supported here: write key:"a/b")'
            )
        self.at += 2
        value = self._value(token.text)
        tag_value = ""
        if token.text == "tag" and self._take("punct", "="):
            tag_value = self._value("tag")
        return _attribute(self.graph, token.text, value, tag_value)

    def _value(self, attribute: str) -> str:
        token = self._peek()
        if token.kind == "null":
            raise self._unsupported("<null>")
        wildcard_ok = attribute == "key" and token.text != "*"
        bare = token.kind == "word" and token.text not in _OPERATORS
        if bare and token.text in _DAGSTER_KEYWORDS:
            bare = False
        if token.kind == "quoted" or (bare and ("*" not in token.text or wildcard_ok)):
            self.at += 1
            return token.text.strip('"')
        raise self._error(
            f"a value after {attribute}: (a letter or _ then letters, digits, _ or /; "
            "or a double-quoted string)"
        )

    def _error(self, expected: str) -> BridgeError:
        token = self._peek()
        got = "the end" if token.kind == "end" else repr(token.text)
        return BridgeError(
            f"Invalid asset selection {self.expression!r}: expected {expected}, got {got} "
            f"(column {token.pos + 1}).\n  {self.expression}\n  {' ' * token.pos}^\n"
            f"Supported: {SUPPORTED}. Double-quote values with other characters, "
            'e.g. owner:"team:data-platform".'
        )

    def _unsupported(self, what: str) -> BridgeError:
        return BridgeError(
            f"In {self.expression!r}: {what} is not supported by the dagster_graphql mode's "
            f"conf select (its worker resolves selections without Dagster). Supported: "
            f"{SUPPORTED}. The in_process and subprocess modes take all of Dagster's syntax."
        )


def select(expression: str, assets: Sequence[AssetNode]) -> set[str]:
    """Keys of ``assets`` that ``expression`` selects (empty if none).

    Raises:
        BridgeError: ``expression`` is invalid, or uses syntax outside the subset.
    """
    graph = _Graph(assets)
    try:
        return _Parser(expression, graph).parse() & set(graph.nodes)
    except RecursionError:
        raise BridgeError(f"Asset selection {expression[:80]!r}... is nested too deeply.") from None

"""Dagster's asset selection syntax, resolved over manifest nodes without importing Dagster.

Airflow DAG files and tasks must never import ``dagster``, yet users filter assets with the
string syntax of ``dagster.AssetSelection.from_string``::

    group:silver and not key:"silver/weather"
    +key:"gold/route_performance"
    tag:layer=gold or owner:"team:data-platform"

:func:`select` gives the same answer as ``AssetSelection.from_string(expr).resolve(graph)``
(restricted to the manifest's assets) for the supported subset, and raises
:class:`~airflow_bridge.errors.BridgeError` for everything else. It works in three steps:
a tokenizer that reproduces Dagster's ANTLR lexer (longest match, keywords win ties), a
recursive-descent parser for Dagster's ``AssetSelection.g4`` grammar that builds a small
AST, and the AST's ``resolve`` methods, which evaluate it against an index of the
manifest built once per call (so cost is linear in the graph's size).

Grammar (Dagster 1.13's ``AssetSelection.g4``, loosest binding first)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "*" | [DIGITS? "+"] primary ["+" DIGITS?]
    primary    := attribute | ("sinks" | "roots") "(" expr ")" | "(" expr ")"
    attribute  := "key" ":" key_value | "tag" ":" value ["=" value] | NAME ":" value
    key_value  := QUOTED | UNQUOTED | WILDCARD
    value      := QUOTED | UNQUOTED | "<null>" | "sensor" | "schedule" | "job"

``and``/``or``/``not`` may also be written in capitals. Unquoted values are
``[a-zA-Z_][a-zA-Z0-9_/]*`` (``*`` is allowed too in ``key:`` values); anything else,
such as ``owner:"team:data"``, must be in double quotes (no escapes). As in Dagster, a
string that does not parse is read with Dagster's older syntax: a single asset key with
``+``/``*`` traversal (``*silver/flights+``), or ``tag:`` followed by a single
``key[=value]`` token.

Semantics, all as Dagster's (the manifest's materializable assets are "all"; upstream
keys that are not in the manifest are treated as the external assets they are):

* ``*``: every asset. ``not x``: every asset that ``x`` does not select.
* ``key:p``: keys matching ``p``, where ``*`` matches any run of characters (also when
  quoted). ``key:*`` alone is a syntax error in Dagster; write ``key:"*"`` or ``*``.
* ``tag:k=v``: assets whose tag ``k`` equals ``v``; ``tag:k``: tag ``k`` with an
  *empty* value (not "has tag k"). Kinds count as ``dagster/kind/<kind>`` tags.
* ``owner:o``, ``group:g`` (``*`` wildcards when quoted), ``kind:k``; ``kind:<null>``
  selects assets without a kind, ``group:<null>`` and ``owner:<null>`` select nothing.
* ``is:materializable``, ``is:external``.
* ``+x`` / ``N+x``: ``x`` and its upstream assets (all, or up to ``N`` levels);
  ``x+`` / ``x+N``: the same downstream; ``+x+`` both.
* ``sinks(x)`` / ``roots(x)``: the assets of ``x`` with no downstream / upstream asset in
  ``x`` (transitively).

Unsupported, because the manifest does not carry what they need: ``status:``,
``column:``, ``table_name:``, ``column_tag:``, ``code_location:``,
``changed_in_branch:``, ``partitions:``, ``automation_type:``, ``sensor:``,
``schedule:`` and ``job:``.

Known differences from Dagster, all outside what a manifest can express or deliberate:

* A broken string starting with ``tag:`` (``tag:layer=gold or owner:team:x``) is an error
  here; Dagster's fallback reads all of it after ``tag:`` as one literal tag and silently
  selects nothing. A single-token legacy tag (``tag:a.b=c``) still works.
* External assets are known only by key: their owners and their own upstream assets are
  not in the manifest, so ``owner:`` never matches them and upstream walks stop at them.
* Export drops ``dagster/*`` tags; kinds are restored from ``AssetNode.kinds``, other
  ``dagster/*`` tags cannot be matched.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

from airflow_bridge.errors import BridgeError
from airflow_bridge.manifest import AssetNode

__all__ = ["SUPPORTED_SYNTAX", "select"]

SUPPORTED_SYNTAX: Final = (
    "key:, tag:, owner:, group:, kind:, is:, sinks(), roots(), *, "
    "traversals (+x, N+x, x+, x+N, +x+), and, or, not, parentheses"
)

KIND_TAG_PREFIX: Final = "dagster/kind/"

# Attributes Dagster's grammar accepts that the manifest cannot answer, and why.
_UNSUPPORTED: Final[Mapping[str, str]] = {
    "status": "it needs materialization status from the Dagster instance",
    "column": "it needs column metadata, which the manifest does not carry",
    "table_name": "it needs table metadata, which the manifest does not carry",
    "column_tag": "it needs column metadata, which the manifest does not carry",
    "code_location": "Dagster only resolves it in its webserver, not over an asset graph",
    "changed_in_branch": "it needs a Dagster branch deployment",
    "partitions": "the manifest does not record the partitions definition type",
    "automation_type": "it needs automation conditions, which the manifest does not carry",
    "sensor": "it needs sensor definitions, which the manifest does not carry",
    "schedule": "it needs schedule definitions, which the manifest does not carry",
    "job": "it needs job definitions, which the manifest does not carry",
}
_IS_VALUES: Final = ("external", "materializable")

# ---------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------

AND, OR, NOT = "AND", "OR", "NOT"
EQUAL, STAR, PLUS, COLON = "EQUAL", "STAR", "PLUS", "COLON"
LPAREN, RPAREN, COMMA = "LPAREN", "RPAREN", "COMMA"
DIGITS, ATTRIBUTE, FUNCTION = "DIGITS", "ATTRIBUTE", "FUNCTION"
QUOTED, UNQUOTED, WILDCARD, NULL, EOF = "QUOTED", "UNQUOTED", "WILDCARD", "NULL", "EOF"

_PUNCTUATION: Final = {
    "=": EQUAL,
    "*": STAR,
    "+": PLUS,
    ":": COLON,
    "(": LPAREN,
    ")": RPAREN,
    ",": COMMA,
}
_ATTRIBUTES: Final = ("key", "owner", "group", "tag", "kind", "is", *_UNSUPPORTED)
_KEYWORDS: Final = {
    "and": AND,
    "AND": AND,
    "or": OR,
    "OR": OR,
    "not": NOT,
    "NOT": NOT,
    **dict.fromkeys(_ATTRIBUTES, ATTRIBUTE),
    "sinks": FUNCTION,
    "roots": FUNCTION,
}
# Keyword tokens Dagster's grammar also accepts as plain values.
_KEYWORD_VALUES: Final = ("sensor", "schedule", "job")

_WHITESPACE = re.compile(r"[ \t\r\n]+")
# UNQUOTED_WILDCARD_STRING; UNQUOTED_STRING is the same without "*".
_WORD = re.compile(r"[a-zA-Z_*][a-zA-Z0-9_*/]*")
_DIGITS = re.compile(r"[0-9]+")
_QUOTED = re.compile(r'"[^"\\\r\n]*"')
_NULL_TEXT: Final = "<null>"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    pos: int

    def describe(self) -> str:
        return "the end of the expression" if self.kind == EOF else repr(self.text)


class _SyntaxError(Exception):
    """The expression is not in Dagster's current grammar (it may still be legacy syntax)."""

    def __init__(self, detail: str, pos: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pos = pos


def _tokenize(expression: str) -> Iterator[_Token]:
    """Split ``expression`` as Dagster's ANTLR lexer does, ending with an EOF token.

    Lazily, so that the parser reports the first error in reading order.
    """
    pos = 0
    while pos < len(expression):
        space = _WHITESPACE.match(expression, pos)
        if space:
            pos = space.end()
            continue
        token = _next_token(expression, pos)
        yield token
        pos += len(token.text)
    yield _Token(EOF, "", len(expression))


def _next_token(expression: str, pos: int) -> _Token:
    """The longest token at ``pos``; on equal length the earlier grammar rule wins."""
    word = _WORD.match(expression, pos)
    if word:
        text = word.group()
        if text == "*":
            return _Token(STAR, text, pos)
        if "*" in text:
            return _Token(WILDCARD, text, pos)
        return _Token(_KEYWORDS.get(text, UNQUOTED), text, pos)
    char = expression[pos]
    if char in _PUNCTUATION:
        return _Token(_PUNCTUATION[char], char, pos)
    digits = _DIGITS.match(expression, pos)
    if digits:
        return _Token(DIGITS, digits.group(), pos)
    quoted = _QUOTED.match(expression, pos)
    if quoted:
        return _Token(QUOTED, quoted.group(), pos)
    if expression.startswith(_NULL_TEXT, pos):
        return _Token(NULL, _NULL_TEXT, pos)
    if char == '"':
        raise _SyntaxError(
            'unterminated quoted value (a quoted value ends at the next ", and cannot '
            "contain a backslash or a line break)",
            pos,
        )
    raise _SyntaxError(f"unexpected character {char!r}", pos)


# ---------------------------------------------------------------------------------------
# AST: each node resolves itself against a _Graph to a set of asset keys
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _All:
    """``*``: every materializable asset."""

    def resolve(self, graph: _Graph) -> set[str]:
        return set(graph.materializable)


@dataclass(frozen=True, slots=True)
class _Key:
    """``key:pattern``: keys (external ones too) matching a ``*`` wildcard pattern."""

    pattern: str

    def resolve(self, graph: _Graph) -> set[str]:
        if "*" not in self.pattern:
            return {self.pattern} & graph.all_keys
        regex = _wildcard_regex(self.pattern)
        return {key for key in graph.all_keys if regex.match(key)}


@dataclass(frozen=True, slots=True)
class _Tag:
    """``tag:key[=value]``: assets whose tag ``key`` equals ``value`` (``""`` if omitted)."""

    key: str
    value: str

    def resolve(self, graph: _Graph) -> set[str]:
        return {key for key, tags in graph.tags.items() if tags.get(self.key) == self.value}


@dataclass(frozen=True, slots=True)
class _Owner:
    """``owner:name``: assets listing ``name`` among their owners."""

    owner: str | None

    def resolve(self, graph: _Graph) -> set[str]:
        return {node.key for node in graph.nodes.values() if self.owner in node.owners}


@dataclass(frozen=True, slots=True)
class _Group:
    """``group:name``: assets in the group; ``*`` in a quoted name is a wildcard."""

    group: str | None

    def resolve(self, graph: _Graph) -> set[str]:
        if not self.group:
            return set()
        if "*" not in self.group:
            return {node.key for node in graph.nodes.values() if node.group == self.group}
        regex = _wildcard_regex(self.group)
        return {node.key for node in graph.nodes.values() if regex.match(node.group)}


@dataclass(frozen=True, slots=True)
class _Kind:
    """``kind:name``: assets of that kind; ``kind:<null>``: assets with no kind."""

    kind: str | None

    def resolve(self, graph: _Graph) -> set[str]:
        if self.kind is None:
            return {key for key, tags in graph.tags.items() if not _has_kind(tags)}
        tag = KIND_TAG_PREFIX + self.kind
        return {key for key, tags in graph.tags.items() if tag in tags}


@dataclass(frozen=True, slots=True)
class _Is:
    """``is:materializable`` or ``is:external``."""

    attribute: str

    def resolve(self, graph: _Graph) -> set[str]:
        return set(graph.materializable if self.attribute == "materializable" else graph.external)


@dataclass(frozen=True, slots=True)
class _Unsupported:
    """An attribute Dagster knows but the manifest cannot answer; never resolved."""

    attribute: str

    def resolve(self, graph: _Graph) -> set[str]:
        raise BridgeError(_unsupported_message(self.attribute))


@dataclass(frozen=True, slots=True)
class _Not:
    """``not x``: every materializable asset ``x`` does not select."""

    operand: _Node

    def resolve(self, graph: _Graph) -> set[str]:
        return set(graph.materializable - self.operand.resolve(graph))


@dataclass(frozen=True, slots=True)
class _And:
    """``x and y and ...``."""

    operands: tuple[_Node, ...]

    def resolve(self, graph: _Graph) -> set[str]:
        return set.intersection(*(operand.resolve(graph) for operand in self.operands))


@dataclass(frozen=True, slots=True)
class _Or:
    """``x or y or ...``."""

    operands: tuple[_Node, ...]

    def resolve(self, graph: _Graph) -> set[str]:
        return set.union(*(operand.resolve(graph) for operand in self.operands))


@dataclass(frozen=True, slots=True)
class _Traversal:
    """``N+x+M``: ``x`` with its upstream and/or downstream assets.

    ``up``/``down`` are ``None`` for no traversal that way, a level count, or
    ``math.inf`` for all levels.
    """

    operand: _Node
    up: float | None
    down: float | None

    def resolve(self, graph: _Graph) -> set[str]:
        selected = self.operand.resolve(graph)
        result: set[str] = set()
        if self.up is not None and selected:
            # Dagster keeps only materializable assets when walking upstream.
            upstream = selected | graph.reach(selected, graph.parents, self.up)
            result |= upstream & graph.materializable
        if self.down is not None:
            result |= selected | graph.reach(selected, graph.children, self.down)
        return result


@dataclass(frozen=True, slots=True)
class _Function:
    """``sinks(x)`` / ``roots(x)``: assets of ``x`` with no descendant / ancestor in ``x``."""

    name: str
    operand: _Node

    def resolve(self, graph: _Graph) -> set[str]:
        selected = self.operand.resolve(graph)
        edges = graph.parents if self.name == "sinks" else graph.children
        return selected - graph.reach(selected, edges, math.inf)


@dataclass(frozen=True, slots=True)
class _LegacyKey:
    """Dagster's older syntax: one exact asset key, which must exist."""

    key: str
    syntax_error: str

    def resolve(self, graph: _Graph) -> set[str]:
        if self.key in graph.all_keys:
            return {self.key}
        close = difflib.get_close_matches(self.key, sorted(graph.all_keys), n=4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise BridgeError(
            f"{self.syntax_error}\nRead as Dagster's older single-asset syntax (`*key+`), "
            f"it names asset {self.key!r}, which does not exist.{hint}"
        )


_Node = (
    _All
    | _Key
    | _Tag
    | _Owner
    | _Group
    | _Kind
    | _Is
    | _Unsupported
    | _Not
    | _And
    | _Or
    | _Traversal
    | _Function
    | _LegacyKey
)


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    """Dagster's wildcard: ``*`` matches anything (``/`` included), the rest literally."""
    return re.compile("^" + re.escape(pattern).replace("\\*", ".*") + "$")


def _has_kind(tags: Mapping[str, str]) -> bool:
    return any(tag.startswith(KIND_TAG_PREFIX) for tag in tags)


# ---------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the tokens of Dagster's ``AssetSelection.g4`` grammar."""

    def __init__(self, expression: str) -> None:
        self._tokens = _tokenize(expression)
        self._peek = next(self._tokens)
        self._previous = self._peek

    def parse(self) -> _Node:
        tree = self._or()
        self._expect(EOF, "'and', 'or' or the end of the expression")
        return tree

    # -- token helpers

    def _advance(self) -> _Token:
        self._previous = self._peek
        self._peek = next(self._tokens, self._peek)  # EOF repeats
        return self._previous

    def _accept(self, kind: str) -> _Token | None:
        return self._advance() if self._peek.kind == kind else None

    def _expect(self, kind: str, expected: str) -> _Token:
        token = self._accept(kind)
        if token is None:
            raise self._error(expected)
        return token

    def _error(self, expected: str, hint: str = "") -> _SyntaxError:
        token = self._peek
        return _SyntaxError(f"expected {expected}, got {token.describe()}{hint}", token.pos)

    # -- grammar rules

    def _or(self) -> _Node:
        operands = [self._and()]
        while self._accept(OR):
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else _Or(tuple(operands))

    def _and(self) -> _Node:
        operands = [self._unary()]
        while self._accept(AND):
            operands.append(self._unary())
        return operands[0] if len(operands) == 1 else _And(tuple(operands))

    def _unary(self) -> _Node:
        if self._accept(NOT):
            return _Not(self._unary())
        if self._accept(STAR):
            return _All()
        return self._traversal()

    def _traversal(self) -> _Node:
        up: float | None = None
        digits = self._accept(DIGITS)
        if digits:
            self._expect(PLUS, "'+' after a traversal depth")
            up = int(digits.text)
        elif self._accept(PLUS):
            up = math.inf
        operand = self._primary()
        down: float | None = None
        if self._accept(PLUS):
            digits = self._accept(DIGITS)
            down = int(digits.text) if digits else math.inf
        if up is None and down is None:
            return operand
        return _Traversal(operand, up, down)

    def _primary(self) -> _Node:
        function = self._accept(FUNCTION)
        if function:
            self._expect(LPAREN, f"'(' after {function.text}")
            return _Function(function.text, self._parenthesized_rest())
        if self._accept(LPAREN):
            return self._parenthesized_rest()
        attribute = self._accept(ATTRIBUTE)
        if attribute:
            self._expect(COLON, f"':' after {attribute.text}")
            return self._attribute(attribute.text)
        raise self._error(
            "an attribute (key:, tag:, owner:, group:, kind:, ...), 'not', '*', '+', "
            "a traversal depth, '(', sinks( or roots("
        )

    def _parenthesized_rest(self) -> _Node:
        inner = self._or()
        self._expect(RPAREN, "')'")
        return inner

    def _attribute(self, name: str) -> _Node:
        if name == "key":
            return _Key(self._key_value())
        value = self._value(name)
        if name == "tag" or name == "column_tag":
            second = self._value(name) if self._accept(EQUAL) else None
            if name == "tag":
                return self._tag(value, second)
        if name in _UNSUPPORTED:
            return _Unsupported(name)
        return self._simple_attribute(name, value)

    def _tag(self, key: str | None, value: str | None) -> _Node:
        if key is None:  # Dagster's visitor fails here: a tag key can't be <null>
            raise _SyntaxError("a tag key cannot be <null>", self._peek.pos)
        return _Tag(key, value or "")

    def _simple_attribute(self, name: str, value: str | None) -> _Node:
        if name == "owner":
            return _Owner(value)
        if name == "group":
            return _Group(value)
        if name == "kind":
            return _Kind(value)
        if value not in _IS_VALUES:  # name == "is"
            raise _SyntaxError(
                f"invalid 'is:' value {value!r}; use one of {', '.join(_IS_VALUES)}",
                self._previous.pos,
            )
        return _Is(value)

    def _key_value(self) -> str:
        token = self._peek
        if token.kind in (QUOTED, UNQUOTED, WILDCARD):
            self._advance()
            return _unquote(token.text)
        raise self._value_error("key")

    def _value(self, attribute: str) -> str | None:
        token = self._peek
        if token.kind == NULL:
            self._advance()
            return None
        if token.kind in (QUOTED, UNQUOTED) or (
            token.kind == ATTRIBUTE and token.text in _KEYWORD_VALUES
        ):
            self._advance()
            return _unquote(token.text)
        raise self._value_error(attribute)

    def _value_error(self, attribute: str) -> _SyntaxError:
        token = self._peek
        hint = ""
        if attribute == "key" and token.kind == STAR:
            hint = '; `key:*` is not valid in Dagster, write `*` or key:"*"'
        elif token.kind in (WILDCARD, STAR):
            hint = f'; a wildcard must be quoted here, e.g. {attribute}:"{token.text}"'
        elif token.kind == DIGITS:
            hint = f'; quote a value starting with a digit, e.g. "{token.text}"'
        return self._error(
            f"a value after {attribute}: (a letter or _ then letters, digits, _ or /; "
            "or a double-quoted string)",
            hint,
        )


def _unquote(text: str) -> str:
    return text.strip('"')


# ---------------------------------------------------------------------------------------
# Dagster's fallback for strings its grammar rejects
# ---------------------------------------------------------------------------------------

_LEGACY_CLAUSE = re.compile(r"^(\*?\+*)?([./\w\d\[\]?_-]+)(\+*\*?)?$")
# A legacy ``tag:`` remainder that is one token; anything else is most likely a mistyped
# expression that Dagster would silently read as one literal tag (see _legacy).
_LEGACY_TAG = re.compile(r'[^\s"()+=]*(=[^\s"()+=]*)?')


def _legacy(expression: str, error: _SyntaxError) -> _Node:
    """What ``AssetSelection.from_string`` falls back to when its grammar rejects a string.

    ``*a/b+`` style clauses select one existing asset key with ``+`` levels (``*``: all
    levels) either way; ``tag:k=v`` reads the rest of the string as one tag. Dagster would
    take ``tag:layer=gold or owner:x:y`` as tag ``layer`` equal to ``"gold or owner:x:y"``
    and select nothing; that form is rejected here instead.
    """
    message = _syntax_message(expression, error)
    clause = _LEGACY_CLAUSE.search(expression.strip())
    if clause:
        ancestors, key, descendants = clause.groups()
        up, down = _legacy_depth(ancestors or ""), _legacy_depth(descendants or "")
        node = _LegacyKey(key, message)
        if up or down:
            return _Traversal(node, up or None, down or None)
        return node
    if expression.startswith("tag:"):
        rest = expression[len("tag:") :]
        if _LEGACY_TAG.fullmatch(rest):
            key, _, value = rest.partition("=")
            return _Tag(key, value)
        if rest.count("=") <= 1:
            key, _, value = rest.partition("=")
            message += (
                "\n(Dagster would fall back to reading everything after `tag:` as one "
                f"literal tag here, tag {key!r} equal to {value!r}, and so select nothing.)"
            )
    raise BridgeError(message)


def _legacy_depth(part: str) -> float:
    return math.inf if "*" in part else len(part)


def _syntax_message(expression: str, error: _SyntaxError) -> str:
    """The error, the expression and a caret under the offending column, plus hints."""
    lines = [
        f"Invalid asset selection {expression!r}: {error.detail} (column {error.pos + 1}).",
        f"  {expression}",
        "  " + " " * error.pos + "^",
        f"Supported: {SUPPORTED_SYNTAX}. Values with characters other than letters, "
        'digits, _ and / must be double-quoted, e.g. owner:"team:data-platform".',
    ]
    return "\n".join(lines)


def _unsupported_message(attribute: str) -> str:
    return (
        f"`{attribute}:` is not supported by the bridge's asset selection: "
        f"{_UNSUPPORTED[attribute]}. Supported: {SUPPORTED_SYNTAX}."
    )


def _first_unsupported(tree: _Node) -> str | None:
    """The first unsupported attribute in ``tree``, depth first, if any."""
    stack: list[_Node] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, _Unsupported):
            return node.attribute
        if isinstance(node, _And | _Or):
            stack.extend(reversed(node.operands))
        elif isinstance(node, _Not | _Traversal | _Function):
            stack.append(node.operand)
    return None


def _parse(expression: str) -> _Node:
    """The AST of ``expression``, with Dagster's legacy fallback; BridgeError if invalid."""
    try:
        tree = _Parser(expression).parse()
    except _SyntaxError as error:
        return _legacy(expression, error)
    unsupported = _first_unsupported(tree)
    if unsupported:
        raise BridgeError(f"In {expression!r}: {_unsupported_message(unsupported)}")
    return tree


# ---------------------------------------------------------------------------------------
# The graph index, built once per select() call
# ---------------------------------------------------------------------------------------


class _Graph:
    """Manifest nodes indexed for resolution.

    ``materializable`` are the manifest's keys; ``external`` are keys that only appear
    as upstream dependencies (Dagster's external assets: selectable by ``key:``, walked
    through by traversals, never part of ``*``).
    """

    def __init__(self, assets: Iterable[AssetNode]) -> None:
        self.nodes: dict[str, AssetNode] = {node.key: node for node in assets}
        self.materializable: frozenset[str] = frozenset(self.nodes)
        self.parents: dict[str, tuple[str, ...]] = {k: n.deps for k, n in self.nodes.items()}
        self.children: dict[str, list[str]] = {}
        for key, deps in self.parents.items():
            for dep in deps:
                self.children.setdefault(dep, []).append(key)
        self.external: frozenset[str] = frozenset(self.children) - self.materializable
        self.all_keys: frozenset[str] = self.materializable | self.external

    @cached_property
    def tags(self) -> dict[str, dict[str, str]]:
        """Per asset, its tags plus a ``dagster/kind/<kind>`` tag per kind, as in Dagster."""
        result: dict[str, dict[str, str]] = {}
        for key, node in self.nodes.items():
            result[key] = {**node.tags, **{KIND_TAG_PREFIX + kind: "" for kind in node.kinds}}
        return result

    @staticmethod
    def reach(start: Iterable[str], edges: Mapping[str, Sequence[str]], depth: float) -> set[str]:
        """Keys at most ``depth`` edges from ``start`` (at least one); a breadth-first walk."""
        seen: set[str] = set()
        frontier = list(start)
        level = 0
        while frontier and level < depth:
            following: list[str] = []
            for key in frontier:
                for other in edges.get(key, ()):
                    if other not in seen:
                        seen.add(other)
                        following.append(other)
            frontier = following
            level += 1
        return seen


# ---------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------


def select(expression: str, assets: Sequence[AssetNode]) -> set[str]:
    """Keys of ``assets`` that the Dagster selection string ``expression`` selects.

    The answer is Dagster's ``AssetSelection.from_string(expression).resolve(graph)``
    restricted to ``assets``. An expression that selects nothing gives an empty set.

    Raises:
        BridgeError: ``expression`` is not valid Dagster selection syntax, uses an
            attribute the bridge cannot answer (``status:``, ``column:``, ...), or (in
            Dagster's older ``*key+`` syntax) names an asset that does not exist.
    """
    try:
        tree = _parse(expression)
        graph = _Graph(assets)
        return tree.resolve(graph) & graph.materializable
    except RecursionError:
        raise BridgeError(f"Asset selection {expression[:80]!r}... is nested too deeply.") from None

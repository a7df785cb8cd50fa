"""The gate in front of `onering sql`: one statement that only reads, and reads only the store.

This is the first of two layers. The stores are the second and would refuse every write on
their own (Silver runs with ClickHouse ``readonly=1``; Gold as ``onering_reader`` in a
read-only transaction over the extended protocol); the gate turns what it can see into a
clear one-line refusal, and covers what ``readonly=1`` lets through (measured on chDB
26.9): the scalar ``file()`` function, ``INTO OUTFILE``, and table functions such as
``sqlite()`` (creates the file before the check), ``python()`` (reads the process's own
objects) or ``mergeTreeIndex()``.

Silver table functions are an allow-list: chDB 26.9 has about 95 and each release adds
more (``paimon*``, ``ytsaurus``, ``arrowstream``…), so a deny-list would let the next one
in. The allowed ones compute rows in memory and touch nothing outside.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import sqlglot
from sqlglot import Expr, exp
from sqlglot.errors import SqlglotError
from sqlglot.expressions.ddl import DDL
from sqlglot.expressions.dml import DML
from sqlglot.tokenizer_core import Token, TokenType

from onering_assets.errors import ReadOnlyError

Dialect = Literal["clickhouse", "postgres"]
HINT = "`onering sql` only reads; change data through `onering materialize`."

CLICKHOUSE_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "generaterandom", "generate_series", "generateseries", "primes",
     "values", "null"}
)  # fmt: skip
# Functions that read files, hosts or processes wherever they appear (``file`` is also a
# scalar function, and readonly=1 does not stop it).
CLICKHOUSE_FUNCTIONS_DENIED = frozenset(
    {"file", "filecluster", "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn",
     "hdfs", "hdfscluster", "remote", "remotesecure", "cluster", "clusterallreplicas", "mysql",
     "postgresql", "jdbc", "odbc", "sqlite", "mongodb", "redis", "azureblobstorage",
     "executable", "input", "dictionary", "filesystem", "python", "arrowstream", "ytsaurus",
     "bigquery"}
)  # fmt: skip
# Postgres functions a reader has no business calling: file and server administration,
# settings, sequences, advisory locks, SQL run from a string. Other ``pg_*`` functions are
# refused too unless listed in POSTGRES_PG_ALLOWED.
POSTGRES_FUNCTIONS_DENIED = frozenset(
    {"set_config", "nextval", "setval", "txid_current", "ts_stat", "ts_rewrite"}
)  # fmt: skip
# ``*_to_xml*`` run SQL from a string or dump whole schemas (``query_to_xml``,
# ``table_to_xml``, ``schema_to_xml``, ``database_to_xml``, ``cursor_to_xml``…).
POSTGRES_DENIED_PREFIXES = ("lo_", "dblink", "query_to_xml", "table_to_xml", "schema_to_xml",
                            "database_to_xml", "cursor_to_xml")  # fmt: skip
# Postgres ``U&"…"`` / ``U&'…'`` escapes spell a name the parser does not decode
# (``U&"pg\005fsleep"``), so no statement may use them.
UNICODE_ESCAPE = re.compile(r"\bU&[\"']", re.IGNORECASE)
# Settings the reader may read (Postgres 18 hides only the superuser-only ones) whose value
# is a shell command or a connection string, where an operator may have put a password.
# ``SHOW ALL`` and the views of every setting are refused for the same reason.
POSTGRES_SETTINGS_DENIED = frozenset(
    {"archive_command", "archive_cleanup_command", "recovery_end_command", "restore_command",
     "ssl_passphrase_command", "primary_conninfo", "archive_library"}
)  # fmt: skip
POSTGRES_TABLES_DENIED = frozenset({"pg_settings", "pg_file_settings", "pg_db_role_setting"})
POSTGRES_PG_ALLOWED = frozenset(
    {"pg_typeof", "pg_size_pretty", "pg_column_size", "pg_relation_size", "pg_table_size",
     "pg_indexes_size", "pg_total_relation_size", "pg_get_viewdef", "pg_get_indexdef",
     "pg_get_constraintdef", "pg_get_expr", "pg_get_userbyid", "pg_table_is_visible"}
)  # fmt: skip

_READS = (exp.Select, exp.SetOperation, exp.Values, exp.Describe)
_WRITES = (DML, DDL, exp.Command, exp.Into, exp.Lock, exp.Copy, exp.Transaction,
           exp.Commit, exp.Rollback, exp.Set)  # fmt: skip
_UNPARSED = {"SHOW", "EXISTS"}  # reads in both stores, which sqlglot parses only as Command
_EXPLAIN_OPTIONS = {"ANALYZE", "ANALYSE", "VERBOSE", "AST", "SYNTAX", "PLAN", "PIPELINE",
                    "ESTIMATE", "QUERY", "TREE", "CURRENT", "TRANSACTION"}  # fmt: skip


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    # sqlglot warns "Falling back to parsing as a 'Command'" on stderr; a Command is
    # refused here anyway, with a message of ours.
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_line(err: Exception) -> str:
    return " ".join(str(err).split("\n", 1)[0].split())


def _tokens(statement: str, dialect: Dialect) -> list[Token]:
    try:
        return sqlglot.Dialect.get_or_raise(dialect).tokenize(statement)
    except SqlglotError as err:
        raise ReadOnlyError(f"Cannot read the statement: {_first_line(err)}") from None


def _single(statement: str, tokens: list[Token]) -> tuple[str, Token]:
    """The one statement in ``statement`` (a trailing semicolon allowed), and its first token.

    After a command keyword (EXPLAIN, SHOW) sqlglot folds the rest into one string token
    whose offsets are wrong, so the text is cut at the first token and at the semicolon.
    """
    bodies: list[tuple[Token, int]] = []
    first: Token | None = None
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if first is not None:
                bodies.append((first, token.start))
            first = None
        elif first is None:
            first = token
    if first is not None:
        bodies.append((first, len(statement)))
    if not bodies:
        raise ReadOnlyError("Give a SELECT statement to run.")
    if len(bodies) > 1:
        raise ReadOnlyError(f"Run one statement at a time. {HINT}")
    start, end = bodies[0]
    return statement[start.start : end].rstrip(), start


def check_statement(statement: str, dialect: Dialect) -> str:
    """Refuse anything but one read of the store; return the statement to send.

    Raises:
        ReadOnlyError: the statement writes, holds more than one statement, reaches outside
            the store, or cannot be read.
    """
    if dialect == "postgres" and UNICODE_ESCAPE.search(statement):
        raise ReadOnlyError(f'U&"…" escapes are refused: spell names plainly. {HINT}')
    text, first = _single(statement, _tokens(statement, dialect))
    rest = text[first.end + 1 - first.start :]
    kind = first.text.upper()
    if kind in _UNPARSED:
        _check_names_only(kind, rest, dialect)
        return text
    if kind == "EXPLAIN":
        check_statement(_explained(rest, dialect), dialect)
        return text
    if any(t.text.upper() == "OUTFILE" for t in _tokens(text, dialect)):
        raise ReadOnlyError(f"INTO OUTFILE writes a file. {HINT}")
    with _quiet_sqlglot():
        try:
            tree = sqlglot.parse_one(text, dialect=dialect)
        except SqlglotError as err:
            raise ReadOnlyError(f"Cannot parse the statement: {_first_line(err)}") from None
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    if isinstance(tree, exp.Describe) and not _is_named_table(tree.this):
        raise ReadOnlyError("DESCRIBE takes a table name here.")
    if not isinstance(tree, _READS) or any(isinstance(n, _WRITES) for n in tree.walk()):
        raise ReadOnlyError(f"Only SELECT, SHOW, DESCRIBE and EXPLAIN run here. {HINT}")
    _check_clauses(tree)
    _check_nodes(tree, dialect)
    return text


def _check_nodes(tree: Expr, dialect: Dialect) -> None:
    for node in tree.walk():
        if isinstance(node, exp.Func):
            _check_function(node, dialect)
        elif dialect == "postgres" and _is_denied_table(node):
            raise ReadOnlyError(f"{node.name} is refused: it lists every server setting.")


def _is_denied_table(node: Expr) -> bool:
    return isinstance(node, exp.Table) and node.name.lower() in POSTGRES_TABLES_DENIED


def _check_setting(name: str) -> None:
    if name.lower() == "all":
        raise ReadOnlyError("SHOW ALL is refused: it lists every server setting.")
    if name.lower() in POSTGRES_SETTINGS_DENIED:
        raise ReadOnlyError(
            f"Reading the setting {name!r} is refused: it may hold a command or a password."
        )


def detect_target(statement: str) -> Literal["silver", "gold"]:
    """The store a statement names: ``silver`` for ``silver.…``, ``gold`` for ``gold.…``.

    An environment's namespace counts as its layer (``silver__dev.…`` is Silver's store).

    A schema counts where it qualifies a name (``silver.flights``, ``"gold".x``) or follows
    FROM/IN (``SHOW TABLES FROM silver``). A statement that reads no table at all
    (``SELECT 1``, ``SELECT version()``) runs on Gold.

    Raises:
        ReadOnlyError: the statement is empty, several statements or unreadable (as in
            ``check_statement``), names both stores, or reads tables of neither.
    """
    tokens = _statement_tokens(statement)
    named = set()
    for i, token in enumerate(tokens):
        # An environment's namespace (``silver__dev``, ``gold__dev``) is in the same store.
        name = token.text.lower().split("__", 1)[0]
        if name not in ("silver", "gold") or token.token_type not in _NAME_TOKENS:
            continue
        after = tokens[i + 1].token_type if i + 1 < len(tokens) else None
        before = tokens[i - 1].text.upper() if i else ""
        if after == TokenType.DOT or before in ("FROM", "IN"):
            named.add(name)
    if len(named) == 1:
        return "silver" if "silver" in named else "gold"
    if named:
        raise ReadOnlyError(
            "The statement names both silver and gold, which live in different stores; "
            "query one at a time (or give --target)."
        )
    first = tokens[0].text.upper() if tokens else ""
    reads = any(t.token_type in (TokenType.FROM, TokenType.TABLE) for t in tokens)
    if first in ("SELECT", "VALUES", "(") and not reads:
        return "gold"
    check_statement(statement, "postgres")  # refused by the gate: say so rather than this
    raise ReadOnlyError(
        "Say which store to query: name its tables silver.… or gold.…, or give "
        "--target silver or --target gold."
    )


_NAME_TOKENS = (TokenType.VAR, TokenType.IDENTIFIER)


def _statement_tokens(statement: str) -> list[Token]:
    """The tokens of the one statement, in whichever store's dialect reads it.

    After a command keyword (SHOW, EXPLAIN, OPTIMIZE…) sqlglot folds the rest into one
    string token, so the rest is read on its own.
    """
    try:
        dialect: Dialect = "postgres"
        text, first = _single(statement, _tokens(statement, dialect))
    except ReadOnlyError as err:
        if "Cannot read" not in str(err):
            raise
        dialect = "clickhouse"
        text, first = _single(statement, _tokens(statement, dialect))
    return [first, *_tokens(text[first.end + 1 - first.start :], dialect)]


def _check_names_only(kind: str, rest: str, dialect: Dialect) -> None:
    tokens = _tokens(rest, dialect)
    if kind == "SHOW" and dialect == "postgres" and tokens:
        _check_setting(tokens[0].text)
    for token in tokens:
        if token.token_type in (TokenType.L_PAREN, TokenType.R_PAREN) or token.text.upper() in (
            "FORMAT",
            "SETTINGS",
            "INTO",
        ):
            raise ReadOnlyError(f"{kind} takes names only here; use --format for the output.")


def _explained(rest: str, dialect: Dialect) -> str:
    """The statement an EXPLAIN explains (Postgres' EXPLAIN ANALYZE runs it)."""
    tokens = _tokens(rest, dialect)
    i = 0
    if dialect == "postgres" and tokens and tokens[0].token_type == TokenType.L_PAREN:
        depth = 0
        for i, token in enumerate(tokens):  # noqa: B007  (i is the closing parenthesis)
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
            if depth == 0:
                break
        i += 1
    while i < len(tokens):
        if tokens[i].text.upper() in _EXPLAIN_OPTIONS or tokens[i].token_type == TokenType.COMMA:
            i += 1
        elif i + 2 < len(tokens) and tokens[i + 1].token_type == TokenType.EQ:
            i += 3  # a ClickHouse EXPLAIN setting: name = value
        else:
            return rest[tokens[i].start :]
    raise ReadOnlyError(f"EXPLAIN needs the SELECT it explains. {HINT}")


def _check_clauses(tree: Expr) -> None:
    for node in tree.walk():
        if node.args.get("format") is not None and isinstance(node, exp.Select):
            raise ReadOnlyError("Give the output format with --format, not a FORMAT clause.")
        if node.args.get("settings") and isinstance(node, exp.Select):
            raise ReadOnlyError("SETTINGS clauses are refused: the query runs read-only.")


def _function_name(node: exp.Func) -> str:
    return node.name if isinstance(node, exp.Anonymous) else node.sql_name()


def _check_function(node: exp.Func, dialect: Dialect) -> None:
    name = _function_name(node)
    names = {name.lower(), node.sql_name().lower()}
    if dialect == "clickhouse":
        in_from = isinstance(node.parent, exp.Table) and node.arg_key == "this"
        if in_from and not (names & CLICKHOUSE_TABLE_FUNCTIONS or _is_series(node)):
            raise ReadOnlyError(
                f"Table function {name}() is refused: Silver queries read Silver "
                f"tables (allowed: {', '.join(sorted(CLICKHOUSE_TABLE_FUNCTIONS))})."
            )
        denied = names & CLICKHOUSE_FUNCTIONS_DENIED
    else:
        denied = {
            n
            for n in names
            if n in POSTGRES_FUNCTIONS_DENIED
            or n.startswith(POSTGRES_DENIED_PREFIXES)
            or (n.startswith("pg_") and n not in POSTGRES_PG_ALLOWED)
        }
    if denied:
        raise ReadOnlyError(f"{name}() is refused: it reaches outside the tables. {HINT}")
    if dialect == "postgres" and name.lower() == "current_setting":
        setting = node.expressions[0] if node.expressions else None
        if not (isinstance(setting, exp.Literal) and setting.is_string):
            raise ReadOnlyError("current_setting() takes the setting's name as a literal here.")
        _check_setting(setting.name)


def _is_series(node: exp.Func) -> bool:
    return isinstance(node, exp.GenerateSeries | exp.ExplodingGenerateSeries)


def _is_named_table(node: Expr | None) -> bool:
    return isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier)

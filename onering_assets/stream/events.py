"""Flight events on Pulsar: how a landed row becomes a message, and a message a Bronze row.

A message is one landed flight row as a JSON object of strings (exactly the landed file's
columns, so Bronze gets the same columns as the batch path), keyed by the flight, with two
properties: ``source`` (the landed file it was replayed from) and ``line`` (its physical line
there). ``source`` + ``line`` is the event's identity: a redelivered message, or the same row
published twice, has the same one, and the stream asset lands it once.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pyarrow as pa

DEFAULT_TOPIC = "persistent://public/default/onering-flights"
KEY_COLUMNS = ("year", "month", "day", "carrier", "flight", "origin", "sched_dep_time")


def dead_letter_topic(topic: str) -> str:
    """Where poison messages go: ``<topic>-DLQ`` (Pulsar's own naming)."""
    return f"{topic}-DLQ"


def flight_key(row: dict[str, str]) -> str:
    """The message key: the same flight always hashes to the same key (and partition)."""
    return "|".join(row.get(c) or "" for c in KEY_COLUMNS)


def encode(row: dict[str, str]) -> bytes:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()


class Event(NamedTuple):
    """A decoded message: its identity, the month it belongs to, and its row.

    The row is either ``row`` (decoded on its own, a dict) or row ``position`` of ``block`` (a
    string table decoded with the other messages of its block, see ``decode_block``).
    """

    source: str
    line: int
    month: str
    row: dict[str, str | None] | None = None
    block: pa.Table | None = None
    position: int = 0


class PoisonMessageError(ValueError):
    """A message that cannot become a Bronze row; the reason goes with it to the DLQ."""


def decode(
    data: bytes, properties: dict[str, str], required: tuple[str, ...], months: frozenset[str]
) -> Event:
    """The event in a message, or PoisonMessageError naming why it is not one.

    Args:
        data: the message payload.
        properties: the message properties (``source`` and ``line`` are required).
        required: the Bronze table's declared columns (each a string or null).
        months: the partitions a row may belong to.
    """
    try:
        row: Any = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # bad UTF-8 or JSON, absurd nesting or digits
        raise PoisonMessageError(f"undecodable: {type(err).__name__}") from None
    if not isinstance(row, dict):
        raise PoisonMessageError(f"not a JSON object but {type(row).__name__}")
    missing = [c for c in required if c not in row]
    if missing:
        raise PoisonMessageError(f"missing column(s) {', '.join(missing)}")
    not_text = sorted(c for c, v in row.items() if v is not None and not isinstance(v, str))
    if not_text:  # as landed: every value a string, or null where the file had none
        raise PoisonMessageError(f"non-string value(s) in {', '.join(not_text)}")
    source, line, month = identity(properties, row["year"], row["month"], months)
    return Event(source, line, month, row=row)


def identity(
    properties: dict[str, str], year: str | None, month: str | None, months: frozenset[str]
) -> tuple[str, int, str]:
    """``source``, ``line`` and month of a decoded row, or PoisonMessageError naming why not."""
    source, line = properties.get("source", ""), properties.get("line", "")
    if not source or not (line.isascii() and line.isdigit()) or len(line) > 18:
        raise PoisonMessageError("missing the source or line property")
    partition = f"{(year or '').strip()}-{(month or '').strip().zfill(2)}"
    if partition not in months:
        raise PoisonMessageError(f"no valid month ({year!r}, {month!r})")
    return source, int(line), partition


def decode_one(
    data: bytes, properties: dict[str, str], required: tuple[str, ...], months: frozenset[str]
) -> Event | str:
    """``decode``, with a poison message's reason returned instead of raised."""
    try:
        return decode(data, properties, required, months)
    except PoisonMessageError as reason:
        return str(reason)


def parse_block(datas: list[bytes], required: tuple[str, ...]) -> pa.Table | None:
    """The payloads as one string table (one JSON parse for all of them), or None.

    None unless the result is certainly what ``decode`` would make of each payload: every
    payload valid UTF-8, one JSON object on one line (it starts with ``{`` and holds no
    newline, and the parse gives exactly one row per payload) of only ``required`` columns,
    each a string or null (parsed against that schema: no type inference, a number or an
    unexpected column is an error), in ``required``'s order. pyarrow's parser is stricter
    than ``json.loads`` (a duplicate key, a lone surrogate, NaN are errors here), so a payload
    it accepts decodes the same both ways; the one difference, a null where a column is
    absent, is why a row with a null is checked on its own (``incomplete_rows``).
    """
    import pyarrow.json as pajson

    if not datas or "year" not in required or "month" not in required:
        return None
    if not all(data[:1] == b"{" for data in datas):
        return None
    joined = b"\n".join(datas)
    if joined.count(b"\n") != len(datas) - 1:
        return None
    schema = pa.schema([(c, pa.string()) for c in required])
    try:
        joined.decode("utf-8")
        table = pajson.read_json(
            pa.BufferReader(joined),
            read_options=pajson.ReadOptions(use_threads=False, block_size=len(joined) + 1),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowException, ValueError):  # (UnicodeDecodeError is a ValueError)
        return None
    if table.num_rows != len(datas) or table.schema != schema:
        return None
    return table.combine_chunks()


def incomplete_rows(table: pa.Table) -> set[int]:
    """The rows with a null in some column (where a column might be absent instead)."""
    rows: set[int] = set()
    for column in table.columns:
        if column.null_count:
            rows.update(i for i, null in enumerate(column.is_null().to_pylist()) if null)
    return rows


def decode_block(
    datas: list[bytes],
    properties: list[dict[str, str]],
    required: tuple[str, ...],
    months: frozenset[str],
) -> list[Event | str]:
    """Each message's event or poison reason, exactly as ``decode`` would say, but faster.

    The payloads are parsed together into one table (``parse_block``); an event keeps a
    reference to it and its row number, not a dict. When that is not certain to match
    ``decode`` (a payload that is not one string-valued object of the table's columns), each
    message is decoded on its own. A row with a null is checked on its own too (the fast
    parse cannot tell a null from an absent column); once ``decode`` finds every column
    present, the parsed row is exactly the decoded one, so its event points into the block
    like the others.
    """
    table = parse_block(datas, required)
    if table is None:
        return [decode_one(d, p, required, months) for d, p in zip(datas, properties, strict=True)]
    incomplete = incomplete_rows(table)
    years, month_values = table["year"].to_pylist(), table["month"].to_pylist()
    partitions: dict[tuple[str, str], str] = {}  # (year, month) -> "YYYY-MM", as identity()
    decoded: list[Event | str] = []
    for i, props in enumerate(properties):
        if i in incomplete:  # a null, or an absent column? ``decode`` tells
            one = decode_one(datas[i], props, required, months)
            # Every column present: the parsed row is exactly the decoded one (see above).
            decoded.append(
                one if isinstance(one, str) else one._replace(row=None, block=table, position=i)
            )
            continue
        source, line = props.get("source", ""), props.get("line", "")
        year, month_value = years[i], month_values[i]
        month = partitions.get((year, month_value))
        if month is None:
            month = f"{year.strip()}-{month_value.strip().zfill(2)}"
            partitions[(year, month_value)] = month
        if source and line.isascii() and line.isdigit() and len(line) <= 18 and month in months:
            decoded.append(Event(source, int(line), month, None, table, i))
            continue
        try:  # not an event: identity() names the reason
            identity(props, year, month_value, months)
        except PoisonMessageError as reason:
            decoded.append(str(reason))
    return decoded

"""Flight events on Pulsar: how a landed row becomes a message, and a message a Bronze row.

A message is one landed flight row as a JSON object of strings (exactly the landed file's
columns, so Bronze gets the same columns as the batch path), keyed by the flight, with two
properties: ``source`` (the landed file it was replayed from) and ``line`` (its physical line
there). ``source`` + ``line`` is the event's identity: a redelivered message, or the same row
published twice, has the same one, and the stream asset lands it once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Event:
    """A decoded message: its row, identity and the month it belongs to."""

    row: dict[str, str]
    source: str
    line: int
    month: str


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
    source, line = properties.get("source", ""), properties.get("line", "")
    if not source or not (line.isascii() and line.isdigit()) or len(line) > 18:
        raise PoisonMessageError("missing the source or line property")
    month = f"{(row['year'] or '').strip()}-{(row['month'] or '').strip().zfill(2)}"
    if month not in months:
        raise PoisonMessageError(f"no valid month ({row['year']!r}, {row['month']!r})")
    return Event(row, source, int(line), month)

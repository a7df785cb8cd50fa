"""`onering stream replay`: publish landed flights to Pulsar as events, at a chosen rate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from onering_assets.errors import OneRingError
from onering_assets.stream.events import encode, flight_key


class ReplayError(OneRingError):
    """The broker refused or lost messages (how many, and its first answer)."""


@dataclass(frozen=True)
class Replayed:
    published: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0


def client(url: str, timeout_s: int = 30) -> Any:
    """A ``pulsar.Client`` with the C++ library's logging kept to errors."""
    import pulsar

    return pulsar.Client(
        url,
        operation_timeout_seconds=timeout_s,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error),
    )


def answered(url: str, call: Callable[[], Any]) -> Any:
    """``call()``; a broker that does not answer is one BrokerError naming it."""
    import pulsar

    from onering_assets.stream.broker import BrokerError

    try:
        return call()
    except pulsar.PulsarException as err:
        raise BrokerError(
            f"Pulsar at {url} did not answer ({type(err).__name__}: {err}); start it, or "
            "check ONERING_PULSAR_URL."
        ) from None


def months_of(table: pa.Table) -> list[str]:
    """``YYYY-MM`` of each landed row (as the batch path assigns months)."""
    found: dict[tuple[str | None, str | None], str] = {}  # a few distinct pairs, many rows
    months: list[str] = []
    for key in zip(table["year"].to_pylist(), table["month"].to_pylist(), strict=True):
        month = found.get(key)
        if month is None:
            y, m = key
            month = found[key] = f"{(y or '').strip()}-{(m or '').strip().zfill(2)}"
        months.append(month)
    return months


def replay(
    url: str,
    topic: str,
    table: pa.Table,
    lines: pa.Array,
    label: str,
    *,
    months: set[str] | None = None,
    rate: float | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Replayed:
    """Publish each landed row (of ``months``, at most ``limit``) as one keyed JSON message.

    ``rate`` caps messages per second (unlimited by default). Every message carries its
    ``source`` (``label``) and ``line`` so the consumer can land it exactly once.

    Raises:
        ReplayError: the broker did not acknowledge every message.
    """
    if months is not None:  # only the rows wanted become Python objects
        row_months = months_of(table)
        wanted = pa.array([m in months for m in row_months], pa.bool_())
        table, lines = table.filter(wanted), lines.filter(wanted)
    if limit is not None:
        table, lines = table.slice(0, limit), lines.slice(0, limit)
    rows = table.to_pylist()
    line_numbers = lines.to_pylist()
    picked = range(len(rows))
    failures: list[str] = []
    import pulsar

    def sent(result: Any, _msg_id: Any) -> None:
        if result != pulsar.Result.Ok:
            failures.append(str(result))

    pulsar_client = client(url)
    started = time.perf_counter()
    try:
        producer = answered(
            url,
            lambda: pulsar_client.create_producer(
                topic, block_if_queue_full=True, batching_enabled=False
            ),
        )
        step = max(1, len(picked) // 10)
        for n, i in enumerate(picked, 1):
            row = rows[i]
            producer.send_async(
                encode(row),
                sent,
                partition_key=flight_key(row),
                properties={"source": label, "line": str(line_numbers[i])},
            )
            if rate:
                ahead = started + n / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            if progress and (n % step == 0 or n == len(picked)):
                progress(f"published {n:,} of {len(picked):,} flights to {topic}")
        producer.flush()
        producer.close()
    finally:
        pulsar_client.close()
    if failures:
        raise ReplayError(
            f"the broker did not acknowledge {len(failures)} of {len(picked)} messages "
            f"(first: {failures[0]}); replay again: the stream asset lands each flight once."
        )
    return Replayed(len(picked), time.perf_counter() - started)

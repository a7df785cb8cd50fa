"""Bronze landing through Spark: the same rows, line numbers and quarantine as the Arrow path.

``ONERING_BRONZE_ENGINE=spark`` makes each Bronze asset parse its landed file with Spark
(dagster-pyspark's session: ``local[*]`` locally, a ``spark://`` master where
``ONERING_SPARK_MASTER`` names one) instead of pyarrow. Spark reads the file as lines
(``spark.read.text``), numbers them as the file does (the header is line 1; blank lines
count and carry no row), parses each line as CSV with every value a string (``from_csv``,
``NA`` and empty as null) and sets aside the lines it cannot parse or that are not UTF-8.
What comes back is a :class:`~onering_assets.resources.source.Landing`, so the audit,
the quarantine and write–audit–publish are the Bronze asset's own, whichever engine parsed.

The lines Spark sets aside are described from the file's own bytes on the driver (the
reason and the raw bytes the Arrow path records); a spark:// cluster must see the file at
the same path (a shared folder), since its executors read it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from onering_assets.resources import source as src

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CORRUPT = "_corrupt"
LINE = "_line"
SPARK_REFUSED = "Spark's CSV parser refuses the line"
# Spark reads these itself; a .zip is unpacked to a temporary file first.
SPARK_READS = (".csv", ".csv.gz")


def numbered_lines(spark: SparkSession, path: str) -> DataFrame:
    """Every physical line of the file with its 1-based number, computed in the JVM.

    A file's splits become partitions in offset order, and ``monotonically_increasing_id``
    counts up within each (partition index << 33, then the row's index): a line's number is
    its index in its partition plus the lines of the partitions before it. Only one row per
    partition reaches the driver; nothing is sorted.
    """
    from pyspark.sql import functions as F  # noqa: N812 (Spark's own convention)

    lines = (
        spark.read.text(path)
        .withColumn("_pid", F.spark_partition_id())
        .withColumn("_id", F.monotonically_increasing_id())
    )
    per_partition = lines.groupBy("_pid").agg(F.count("*").alias("n"), F.min("_id").alias("first"))
    shifts, before = [], 0
    for pid, n, first in sorted(tuple(r) for r in per_partition.collect()):
        shifts.append((pid, before - first))
        before += n
    shift = spark.createDataFrame(shifts, "_pid INT, _shift LONG")
    numbered = lines.join(F.broadcast(shift), "_pid")
    return numbered.select("value", (F.col("_id") + F.col("_shift") + 1).alias(LINE))


# A quoted value and its delimiter: a quote, anything with quotes doubled, a quote.
CLOSED_QUOTED_VALUE = r'(^|,)"(?:[^"]|"")*+"'
OPENING_QUOTE = r'(^|,)"'
# Text after a value's closing quote (`"N1\"4228"`): not RFC 4180. Arrow appends it to the
# value; Spark's parser cannot do the same, so Spark refuses the line (it is set aside).
TEXT_AFTER_CLOSING_QUOTE = CLOSED_QUOTED_VALUE + "[^,]"


def parse(lines: DataFrame, names: list[str], header_line: int) -> DataFrame:
    """The lines after the header as rows of strings, with ``_corrupt`` set when refused."""
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    schema = T.StructType(
        [T.StructField(n, T.StringType()) for n in names] + [T.StructField(CORRUPT, T.StringType())]
    )
    options = {
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": CORRUPT,
        "nullValue": "NA",
        "emptyValue": "",
        # RFC 4180, as Arrow reads it: a quote inside a quoted value is doubled, and a
        # backslash is an ordinary character (Spark's default escape is the backslash).
        "quote": '"',
        "escape": '"',
    }
    # Only empty lines are skipped, as Arrow skips them (a line of spaces is refused there).
    body = lines.filter((F.col(LINE) > header_line) & (F.col("value") != ""))
    parsed = body.select(
        LINE, "value", F.from_csv("value", schema.simpleString(), options).alias("row")
    )
    # Spark keeps a line's bytes as read: bytes that are not UTF-8 are caught here. A value
    # that opens a quote it never closes (a quoted line break, which Arrow refuses as
    # unbalanced quotes) Spark would land truncated: with every closed quoted value removed,
    # a quote still opening a value means the line is refused. (A quote inside an unquoted
    # value is an ordinary character, for both.)
    closed = F.regexp_replace("value", CLOSED_QUOTED_VALUE, "$1")
    unbalanced = closed.rlike(OPENING_QUOTE) | F.col("value").rlike(TEXT_AFTER_CLOSING_QUOTE)
    refused = F.col(f"row.{CORRUPT}").isNotNull() | ~F.is_valid_utf8("value") | unbalanced
    # Spark takes one null marker (NA); the Arrow path reads empty values as null too.
    values = (F.nullif(F.col(f"row.`{n}`"), F.lit("")).alias(n) for n in names)
    return parsed.select(LINE, *values, refused.alias(CORRUPT))


def malformed(data: bytes, numbers: list[int], expected: int) -> pa.Table:
    """The refused lines as the Arrow path records them: line, reason, raw bytes."""
    if not numbers:  # the common case: no need to split the file into lines
        return src.MALFORMED_SCHEMA.empty_table()
    wanted = set(numbers)
    rows: dict[str, list] = {"line": [], "reason": [], "raw": []}
    for number, line in enumerate(data.splitlines(), 1):
        if number in wanted:
            rows["line"].append(number)
            rows["reason"].append(src.defect(line, expected) or SPARK_REFUSED)
            rows["raw"].append(line)
    return pa.Table.from_pydict(rows, schema=src.MALFORMED_SCHEMA)


def land(
    spark: SparkSession, source: src.SourceResource, table: str, scratch_dir: str = ""
) -> src.Landing:
    """The table as landed, parsed by Spark: rows, their line numbers, the lines set aside.

    A ``.zip`` is unpacked under ``scratch_dir`` (executors elsewhere must see it at that
    path; empty: the system's temp folder).
    """
    path = source.locate(table)
    data = src.unpack(path).removeprefix(src.BOM)
    label = source.label(path)
    if not data or data.isspace():
        return src.Landing(pa.table({}), pa.array([], pa.int64()), label=label)
    names, header_index = src.header(data, str(path))
    if scratch_dir:
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onering-spark-", dir=scratch_dir or None) as tmp:
        readable = path
        if not path.name.endswith(SPARK_READS):
            readable = Path(tmp) / f"{table}.csv"
            readable.write_bytes(data)
        rows = parse(numbered_lines(spark, str(readable)), names, header_index + 1).cache()
        try:
            good = rows.filter(f"NOT {CORRUPT}").orderBy(LINE).drop(CORRUPT).toArrow()
            refused = [r[0] for r in rows.filter(CORRUPT).select(LINE).collect()]
        finally:
            rows.unpersist()
    lines = good.column(LINE).cast(pa.int64())
    table_rows = good.drop_columns([LINE]).cast(pa.schema([(n, pa.string()) for n in names]))
    return src.Landing(
        table_rows,
        lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines,
        malformed(data, refused, len(names)),
        label,
    )

"""A landed file read a piece at a time gives what the whole file gives, line for line."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from onering_assets.errors import SourceError
from onering_assets.resources.csv_parse import (
    MALFORMED_SCHEMA,
    Parsed,
    line_chunks,
    parse_chunks,
    parse_csv,
)
from onering_assets.resources.source import SourceResource, read_ahead
from tests.corpus.conftest import BASE, Case, load_cases

CASES = [pytest.param(c, id=c.name) for c in load_cases()]
# Pieces of one byte cut between every pair of line ends; the others land mid-line.
SIZES = (1, 7, 100, 4096)
TRICKY = {
    "crlf": b"a,b\r\n1,2\r\n3,4\r\n",
    "cr_only": b"a,b\r1,2\r3,4\r",
    "bom_and_blank_lines_first": b"\xef\xbb\xbf\n\n  \na,b\n1,2\n\n3,4",
    "no_final_newline": b"a,b\n1,2\n3,4",
    "header_only": b"a,b\n",
    "blank": b"\n\n \n",
    "empty": b"",
    "bad_lines_between": b'a,b\n1,2\n1,2,3\n"x,4\n5,6\n\xff,7\n8,9\n',
    # What pyarrow alone would judge otherwise than line by line (review of issue 13):
    "text_after_a_closing_quote": b'a,b\n"x"y,1\n4\n' + b"5,6\n" * 50,
    "space_after_a_closing_quote": b'a,b\n1,"x" \n4\n',
    "quote_left_open_before_a_cut": b'a,b\n1,"x\n2,3\n',
    "quote_left_open_at_the_end": b'a,b\n1,2\n3,"tru',
    "cr_cr_lf": b"a,b\r\r\n1,2\r\r\n3,4\r\r\n5,6\r\r\n",
    "lf_cr": b"a\n\r1\n",
    "cr_inside_quotes": b'a,b\n"x\ry",1\n',
    "bom_mid_file": b"a,b\n1,2\n\xef\xbb\xbfx,3\n",
    "bom_alone_last": b"a\n\xef\xbb\xbf",
    "bom_after_a_blank_line": b"\n\xef\xbb\xbfa,b\n1,2\n",
    "whitespace_line_before_the_header": b" \nid\n1\n\n2\n",
    "escaped_and_empty_quotes": b'a,b\n"x""y",""\n"1,2",3\n',
}


def whole(parsed: list[Parsed]) -> tuple[pa.Table, list[int], list[dict]]:
    tables = [p.table for p in parsed if p.table.num_columns]
    table = pa.concat_tables(tables) if tables else pa.table({})
    lines = [n for p in parsed for n in p.lines.to_pylist()]
    return table, lines, [row for p in parsed for row in p.malformed.to_pylist()]


def in_pieces(data: bytes, size: int, name: str) -> tuple[pa.Table, list[int], list[dict]]:
    return whole(list(parse_chunks(line_chunks(io.BytesIO(data), size), name=name)))


def assert_same(data: bytes, name: str) -> None:
    expected = whole([parse_csv(data, name=name)])
    for size in SIZES:
        table, lines, malformed = in_pieces(data, size, name)
        assert table.equals(expected[0]), (name, size)
        assert lines == expected[1], (name, size)
        assert malformed == expected[2], (name, size)


@pytest.mark.parametrize("case", CASES)
def test_every_corpus_file_parses_the_same_in_pieces(case: Case) -> None:
    assert_same(case.data(), case.name)


@pytest.mark.parametrize("name", list(TRICKY))
def test_line_endings_bom_and_blank_lines_parse_the_same_in_pieces(name: str) -> None:
    assert_same(TRICKY[name], name)


def test_pieces_end_at_line_ends_and_never_split_a_crlf() -> None:
    data = b"h1,h2\r\n" + b"".join(b"%d,x\r\n" % i for i in range(500))
    for size in (1, 2, 3, 64):
        pieces = list(line_chunks(io.BytesIO(data), size))
        assert b"".join(pieces) == data
        assert all(p.endswith(b"\r\n") for p in pieces)


def test_a_line_longer_than_a_piece_is_kept_whole() -> None:
    long = b"y" * 10_000
    data = b"a,b\n1," + long + b"\n2,z\n"
    pieces = list(line_chunks(io.BytesIO(data), 100))
    assert b"".join(pieces) == data
    assert all(p.endswith(b"\n") for p in pieces)
    assert any(b"1," + long + b"\n" in p for p in pieces)
    table, lines, _ = in_pieces(data, 100, "long")
    assert table["b"].to_pylist() == [long.decode(), "z"]
    assert lines == [2, 3]


def test_land_chunks_of_a_gzip_is_land(tmp_path: Path) -> None:
    data = (BASE / "flights.csv").read_bytes()
    (tmp_path / "flights.csv.gz").write_bytes(gzip.compress(data))
    source = SourceResource(path=str(tmp_path), chunk_bytes=2048)
    pieces = list(source.land_chunks("flights"))
    assert len(pieces) > 3
    landing = source.land("flights")
    assert pa.concat_tables([p.table for p in pieces]).equals(landing.table)
    assert [n for p in pieces for n in p.lines.to_pylist()] == landing.lines.to_pylist()
    assert {p.label for p in pieces} == {landing.label}


def test_a_gzip_truncated_part_way_is_refused_when_reached(tmp_path: Path) -> None:
    data = b"".join((BASE / "flights.csv").read_bytes() for _ in range(20))
    packed = gzip.compress(data)
    (tmp_path / "flights.csv.gz").write_bytes(packed[: len(packed) * 2 // 3])
    pieces = SourceResource(path=str(tmp_path), chunk_bytes=4096).land_chunks("flights")
    assert next(pieces).table.num_rows  # the first pieces read fine
    with pytest.raises(SourceError, match=r"flights\.csv\.gz: cannot be read"):
        for _ in pieces:
            pass


def test_read_ahead_raises_where_the_error_was_and_closes_on_early_stop() -> None:
    closed: list[bool] = []

    def produce(fail_at: int) -> Iterator[int]:
        try:
            for i in range(10):
                if i == fail_at:
                    raise ValueError(f"broken at {i}")
                yield i
        finally:
            closed.append(True)

    seen: list[int] = []
    with pytest.raises(ValueError, match="broken at 4"):
        for item in read_ahead(produce(4)):
            seen.append(item)
    assert seen == [0, 1, 2, 3]
    stopped = read_ahead(produce(-1))
    assert next(stopped) == 0
    stopped.close()  # the consumer stops early: the producer is closed, not left running
    assert closed == [True, True]


@pytest.mark.parametrize(
    ("data", "rows", "lines", "malformed"),
    [
        (b'a,b\n"x"y,1\n4\n', [], [], [2, 3]),
        (b'a,b\n1,"x" \n4,5\n', [{"a": "4", "b": "5"}], [3], [2]),
        (b'a,b\n1,2\n3,"tru', [{"a": "1", "b": "2"}], [2], [3]),
        (b"a,b\r\r\n1,2\r\r\n3,4\r\r\n", [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}], [3, 5], []),
        (
            b"a,b\n1,2\n\xef\xbb\xbfx,3\n",
            [{"a": "1", "b": "2"}, {"a": "\ufeffx", "b": "3"}],
            [2, 3],
            [],
        ),
        (b"\n\xef\xbb\xbfa,b\n1,2\n", [{"\ufeffa": "1", "b": "2"}], [3], []),
    ],
    ids=[
        "text_after_quote",
        "space_after_quote",
        "open_quote_at_end",
        "cr_cr_lf",
        "bom_mid",
        "bom_2nd",
    ],
)
def test_what_pyarrow_alone_would_misjudge_is_judged_line_by_line(
    data: bytes, rows: list, lines: list, malformed: list
) -> None:
    for parsed in [parse_csv(data, name="t"), *[whole_of(data, size) for size in SIZES]]:
        assert parsed.table.to_pylist() == rows
        assert set(parsed.table.schema.types) <= {pa.string()}
        assert parsed.lines.to_pylist() == lines
        assert parsed.malformed["line"].to_pylist() == malformed


def whole_of(data: bytes, size: int) -> Parsed:
    table, lines, malformed = in_pieces(data, size, "t")
    bad = pa.Table.from_pylist(malformed, schema=MALFORMED_SCHEMA)
    return Parsed(table, pa.array(lines, pa.int64()), bad)

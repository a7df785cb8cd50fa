"""The model's input, shared by training, serving and drift (contract 2 of the ML issue).

A request is ``{carrier, origin, dest, sched_dep_at}``; ``sched_dep_at`` is the scheduled
departure in New York local time (a naive value is taken as New York time; one with an
offset is converted to it). The prediction is made two hours before it, so every feature
is joined as of ``sched_dep_at - 2 h`` (UTC). Two fields are derived from ``sched_dep_at``:
``dep_hour`` (0-23) and ``day_of_week`` (1 = Monday … 7 = Sunday). The feature columns are
those of ``platform/featurestore/feast_repo/views.yml``, in its order; nulls are filled with
the fill values stored with the model (training's medians). The label is
``late = arr_delay > 15``; flights without an arrival delay (cancelled or diverted) carry no
label and are never trained on.

The model's inputs, in order: the categorical request fields (strings), then the derived
fields and the features (floats). The ONNX form has one input per column with these names.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import yaml

from onering_assets.errors import ConfigError, OneRingError
from onering_assets.settings import PLATFORM_DIR

if TYPE_CHECKING:
    import pandas as pd

VIEWS_FILE = PLATFORM_DIR / "featurestore" / "feast_repo" / "views.yml"
MODEL_NAME = "flight_late_arrival"
TIMEZONE = "America/New_York"
NEW_YORK = ZoneInfo(TIMEZONE)
PREDICTION_LEAD = timedelta(hours=2)
LATE_MINUTES = 15
LABEL = "late"
# What Feast's point-in-time join is keyed on in the entity frame (UTC, tz-aware).
EVENT_TIMESTAMP = "event_timestamp"

REQUEST_FIELDS = ("carrier", "origin", "dest", "sched_dep_at")
CATEGORICAL_COLUMNS = ("carrier", "origin", "dest")
DERIVED_COLUMNS = ("dep_hour", "day_of_week")

InputType = Literal["string", "float"]


class ModelInputError(OneRingError):
    """A request field is missing or invalid; ``field`` names it."""

    retryable = False

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class FeatureRef:
    """One feature of a view: ``view:name`` is its Feast reference."""

    view: str
    name: str
    dtype: str

    @property
    def ref(self) -> str:
        return f"{self.view}:{self.name}"


@functools.cache
def feature_refs(views_file: Path = VIEWS_FILE) -> tuple[FeatureRef, ...]:
    """Every feature of every view in ``views.yml``, in the file's order.

    Raises:
        ConfigError: the file is missing or declares no features.
    """
    try:
        declared = yaml.safe_load(views_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the feature views from {views_file}: {err}") from err
    refs = tuple(
        FeatureRef(view, feature["name"], feature["dtype"])
        for view, spec in (declared.get("views") or {}).items()
        for feature in spec.get("features") or []
    )
    if not refs:
        raise ConfigError(f"{views_file} declares no features; the model has no inputs.")
    return refs


def feature_columns(views_file: Path = VIEWS_FILE) -> tuple[str, ...]:
    """The feature columns, as Feast's historical retrieval names them (no view prefix)."""
    return tuple(ref.name for ref in feature_refs(views_file))


def numeric_columns(views_file: Path = VIEWS_FILE) -> tuple[str, ...]:
    """The model's float inputs: the derived fields, then the features."""
    return DERIVED_COLUMNS + feature_columns(views_file)


def model_columns(views_file: Path = VIEWS_FILE) -> tuple[str, ...]:
    """Every model input in order: categorical request fields, derived fields, features."""
    return CATEGORICAL_COLUMNS + numeric_columns(views_file)


def onnx_inputs(views_file: Path = VIEWS_FILE) -> list[dict[str, str]]:
    """The ONNX form's inputs, ordered: ``[{"name": …, "type": "string" | "float"}]``."""
    return [{"name": c, "type": input_type(c)} for c in model_columns(views_file)]


def input_type(column: str) -> InputType:
    """``string`` for a categorical request field, else ``float``."""
    return "string" if column in CATEGORICAL_COLUMNS else "float"


# Departures a schedule can hold; also keeps time-zone arithmetic inside datetime's range.
FIRST_YEAR, LAST_YEAR = 1900, 2100


def to_new_york(value: datetime | str) -> datetime:
    """A scheduled departure as an aware New York time (naive values are New York time).

    Raises:
        ModelInputError: not an ISO 8601 date-time, or a year outside 1900-2100.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ModelInputError(
                "sched_dep_at",
                f"{value!r} is not an ISO 8601 date-time such as 2013-10-01T08:30",
            ) from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ModelInputError(
            "sched_dep_at", f"year {value.year} is outside {FIRST_YEAR}-{LAST_YEAR}"
        )
    if value.tzinfo is None:
        # An ambiguous wall time (the hour repeated in November) is its first occurrence; a
        # skipped one (March) moves one hour on. The round trip through UTC does the latter.
        return value.replace(tzinfo=NEW_YORK).astimezone(UTC).astimezone(NEW_YORK)
    return value.astimezone(NEW_YORK)


def prediction_time(sched_dep_at: datetime | str) -> datetime:
    """When the prediction is made (features are joined as of it): departure - 2 h, UTC."""
    local = to_new_york(sched_dep_at)
    return local.astimezone(UTC) - PREDICTION_LEAD


def derived(sched_dep_at: datetime | str) -> dict[str, int]:
    """``dep_hour`` (0-23) and ``day_of_week`` (1 = Monday … 7) of a scheduled departure."""
    local = to_new_york(sched_dep_at)
    return {"dep_hour": local.hour, "day_of_week": local.isoweekday()}


@dataclass(frozen=True)
class Request:
    """One validated request: codes upper-cased, the departure an aware New York time."""

    carrier: str
    origin: str
    dest: str
    sched_dep_at: datetime

    def entity_row(self) -> dict[str, Any]:
        """Join keys, derived fields and the prediction time (for an entity frame)."""
        return {
            "carrier": self.carrier,
            "origin": self.origin,
            "dest": self.dest,
            **derived(self.sched_dep_at),
            EVENT_TIMESTAMP: prediction_time(self.sched_dep_at),
        }


def parse_code(field: str, value: Any) -> str:
    """A carrier or airport code, stripped and upper-cased.

    Raises:
        ModelInputError: missing or blank, not a string, or not a short ASCII letters-and-digits
            code.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ModelInputError(field, "required: a non-empty code such as 'UA' or 'JFK'")
    if not isinstance(value, str):
        raise ModelInputError(field, f"expected a string code such as 'JFK', got {value!r}")
    code = value.strip().upper()
    if not (code.isascii() and code.isalnum()) or len(code) > 8:
        raise ModelInputError(field, f"{value!r} is not a carrier or airport code")
    return code


def parse_request(payload: Mapping[str, Any]) -> Request:
    """Validate one request's fields.

    Raises:
        ModelInputError: a field is missing, not a string, or not a valid code/date-time;
            the error's ``field`` names it.
    """
    if not isinstance(payload, Mapping):
        raise ModelInputError("request", f"expected an object with {', '.join(REQUEST_FIELDS)}")
    codes = {field: parse_code(field, payload.get(field)) for field in CATEGORICAL_COLUMNS}
    when = payload.get("sched_dep_at")
    if not isinstance(when, str | datetime):
        raise ModelInputError("sched_dep_at", "required: an ISO 8601 date-time (New York time)")
    return Request(sched_dep_at=to_new_york(when), **codes)


def entity_frame(flights: pd.DataFrame) -> pd.DataFrame:
    """Add ``dep_hour``, ``day_of_week`` and ``event_timestamp`` to flights.

    ``flights`` has ``sched_dep_at`` (aware, or naive New York time); the result's
    ``event_timestamp`` is ``sched_dep_at - 2 h`` in UTC, what Feast joins features as of.
    """
    local = flights["sched_dep_at"]
    if getattr(local.dt, "tz", None) is None:
        # As to_new_york: an hour repeated in November is its first occurrence; a skipped
        # wall time in March moves one hour on.
        local = local.dt.tz_localize(TIMEZONE, ambiguous=True, nonexistent=timedelta(hours=1))
    local = local.dt.tz_convert(TIMEZONE)
    out = flights.copy()
    out["sched_dep_at"] = local
    out["dep_hour"] = local.dt.hour.astype("int32")
    out["day_of_week"] = (local.dt.dayofweek + 1).astype("int32")
    out[EVENT_TIMESTAMP] = local.dt.tz_convert("UTC") - PREDICTION_LEAD
    return out


def fill_values(frame: pd.DataFrame, views_file: Path = VIEWS_FILE) -> dict[str, float]:
    """Training's fill values: each numeric input's median (0.0 if the column is all null)."""
    values = {}
    for column in numeric_columns(views_file):
        median = frame[column].astype("float64").median()
        values[column] = 0.0 if median != median else float(median)  # NaN: all null
    return values


def model_frame(
    frame: pd.DataFrame, fills: Mapping[str, float], views_file: Path = VIEWS_FILE
) -> pd.DataFrame:
    """The model's input columns in order, nulls filled, floats as float64, codes as str.

    Raises:
        ConfigError: a model column is missing, or a numeric column has no fill value.
    """
    import pandas as pd

    columns = model_columns(views_file)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"the frame lacks model input columns: {', '.join(missing)}")
    unfilled = [c for c in numeric_columns(views_file) if c not in fills]
    if unfilled:
        raise ConfigError(f"no fill value for: {', '.join(unfilled)} (retrain the model)")
    out = pd.DataFrame({c: frame[c] for c in columns})
    for column in numeric_columns(views_file):
        out[column] = pd.Series(pd.to_numeric(out[column]), dtype="float64")
    out = out.fillna({c: fills[c] for c in numeric_columns(views_file)})
    for column in CATEGORICAL_COLUMNS:
        out[column] = out[column].astype(str)
    return out

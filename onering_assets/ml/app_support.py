"""What the Streamlit mini-app (``platform/ml/app/app.py``) does, as plain functions.

The app asks the BentoML service (``onering serve``) over HTTP, lists flights from the
schedule landed in the lake (Bronze, so it never opens chDB, which one process owns at a
time), and reads the drift summaries the ``ml/drift_report`` asset wrote to the lake.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from onering_assets.errors import OneRingError
from onering_assets.ml.drift import DriftSummary
from onering_assets.partitions import MONTHLY
from onering_assets.resources.lake import LakeResource

if TYPE_CHECKING:
    import pandas as pd

ENDPOINT_ENV = "ONERING_SERVE_URL"
DEFAULT_ENDPOINT = "http://127.0.0.1:3001"
TIMEOUT_S = 10.0
SCHEDULE_COLUMNS = ("year", "month", "day", "sched_dep_time", "carrier", "flight", "origin", "dest")


class EndpointError(OneRingError):
    """The prediction service refused a flight or could not be reached (the message says)."""


@dataclass(frozen=True)
class Prediction:
    """The service's answer for one flight."""

    probability: float
    late: bool
    model_version: str
    fallbacks: list[dict[str, Any]] = field(default_factory=list)


def endpoint(env: Mapping[str, str] | None = None) -> str:
    """The service's base URL: ``ONERING_SERVE_URL``, else the `onering serve` default."""
    env = os.environ if env is None else env
    return (env.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")


def predict(base_url: str, flight: Mapping[str, str], timeout_s: float = TIMEOUT_S) -> Prediction:
    """``POST <base_url>/predict`` with one flight.

    Raises:
        EndpointError: the service answered an error (its message, e.g. which field is
            wrong), an unexpected body, or could not be reached.
    """
    url = f"{base_url.rstrip('/')}/predict"
    request = urllib.request.Request(
        url,
        data=json.dumps(dict(flight)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise EndpointError(f"the service refused the flight: {_error_text(err)}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise EndpointError(
            f"cannot reach {url} ({reason}); start the service with `onering serve`."
        ) from None
    except ValueError:
        raise EndpointError(f"{url} did not answer JSON.") from None
    try:
        return Prediction(
            probability=float(body["probability"]),
            late=bool(body["late"]),
            model_version=str(body["model_version"]),
            fallbacks=list(body.get("fallbacks") or []),
        )
    except (KeyError, TypeError, ValueError):
        raise EndpointError(f"{url} answered an unexpected body: {str(body)[:200]}") from None


def _error_text(err: urllib.error.HTTPError) -> str:
    raw = err.read()
    try:
        return str(json.loads(raw).get("error") or raw.decode()[:200])
    except (ValueError, AttributeError):
        return f"HTTP {err.code}: {raw.decode(errors='replace')[:200]}"


def latest_schedule_month(lake: LakeResource) -> str | None:
    """The newest month whose flights are landed in the lake."""
    landed = [m for m in MONTHLY.get_partition_keys() if lake.exists("bronze", "flights", m)]
    return landed[-1] if landed else None


def schedule(lake: LakeResource, month: str) -> pd.DataFrame:
    """The month's scheduled flights as landed: carrier, flight, origin, dest, departure.

    ``sched_dep_at`` is the ISO local (New York) departure the service takes; rows whose
    landed values do not make a date and time are left out.
    """
    import pandas as pd

    data = lake.read("bronze", "flights", month).select(list(SCHEDULE_COLUMNS)).to_pandas()
    parts = data[["year", "month", "day", "sched_dep_time"]].apply(pd.to_numeric, errors="coerce")
    parts["hour"] = parts.pop("sched_dep_time")
    parts["minute"] = parts["hour"] % 100
    parts["hour"] = parts["hour"] // 100
    when = pd.to_datetime(parts, errors="coerce")
    out = pd.DataFrame(
        {
            "carrier": data["carrier"].str.strip().str.upper(),
            "flight": data["flight"].str.strip(),
            "origin": data["origin"].str.strip().str.upper(),
            "dest": data["dest"].str.strip().str.upper(),
            "sched_dep_at": when,
        }
    ).dropna()
    out = out.sort_values(["sched_dep_at", "carrier", "flight"]).reset_index(drop=True)
    out["sched_dep_at"] = out["sched_dep_at"].dt.strftime("%Y-%m-%dT%H:%M")
    return out


def label(row: Mapping[str, Any]) -> str:
    """``UA 1545  EWR → IAH  2013-12-01 05:15`` for a schedule row."""
    when = str(row["sched_dep_at"]).replace("T", " ")
    return f"{row['carrier']} {row['flight']}  {row['origin']} → {row['dest']}  {when}"


def columns_frame(summary: DriftSummary) -> pd.DataFrame:
    """One row per tested column: test, score, threshold, drifted; drifted columns first."""
    import pandas as pd

    frame = pd.DataFrame(
        [
            {
                "column": c.column,
                "test": c.test,
                "score": c.score,
                "threshold": c.threshold,
                "drifted": c.drifted,
            }
            for c in summary.columns
        ]
    )
    return frame.sort_values(["drifted", "column"], ascending=[False, True]).reset_index(drop=True)


def shares_frame(summaries: Mapping[str, DriftSummary]) -> pd.DataFrame:
    """Share of drifted columns by month (oldest first), beside Evidently's drift share."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"month": m, "share_of_drifted_columns": s.share, "drift_share": s.drift_share}
            for m, s in summaries.items()
        ]
    )

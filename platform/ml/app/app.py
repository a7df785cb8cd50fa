"""Will this flight arrive more than 15 minutes late? A Streamlit mini-app (`onering app`).

Pick a flight from the landed schedule or type one in; the probability comes from the
BentoML service (`onering serve`; its URL from ``ONERING_SERVE_URL`` or the sidebar). Below,
the latest drift report the ``ml/drift_report`` asset wrote to the lake, with a chart.
The logic lives in ``onering_assets.ml.app_support``; this file only lays it out.
"""

from __future__ import annotations

from datetime import datetime

import altair as alt
import streamlit as st

from onering_assets.errors import OneRingError
from onering_assets.ml import app_support as support
from onering_assets.ml.drift import DEFAULTS
from onering_assets.ml.drift_store import lake_for, month_uri, summaries
from onering_assets.resources.lake import LakeResource
from onering_assets.settings import Settings

st.set_page_config(page_title="OneRing: late arrivals", layout="wide")


def lake() -> LakeResource:
    """The profile's lake, resolved on every rerun (cheap) so a changed setting is seen."""
    return lake_for(Settings.from_env())


@st.cache_data(ttl=300, max_entries=4)
def schedule(lake_url: str, month: str):
    return support.schedule(lake(), month)


def pick_from_schedule() -> dict[str, str] | None:
    month = support.latest_schedule_month(lake())
    if month is None:
        st.info("No flights landed yet: run `onering materialize` first, or type a flight in.")
        return None
    flights = schedule(lake().url, month)
    days = sorted(flights["sched_dep_at"].str[:10].unique())
    day = st.selectbox("Day", days, key="day")
    todays = flights[flights["sched_dep_at"].str.startswith(str(day))].reset_index(drop=True)
    choice = st.selectbox(
        f"Flight ({len(todays)} scheduled)",
        range(len(todays)),
        format_func=lambda i: support.label(todays.iloc[i]),
        key="flight",
    )
    row = todays.iloc[int(choice or 0)]
    return {k: str(row[k]) for k in ("carrier", "origin", "dest", "sched_dep_at")}


def type_one_in() -> dict[str, str]:
    left, middle, right = st.columns(3)
    carrier = left.text_input("Carrier", "UA", key="carrier")
    origin = middle.text_input("Origin", "EWR", key="origin")
    dest = right.text_input("Destination", "ORD", key="dest")
    when = st.datetime_input(
        "Scheduled departure (New York time)", datetime(2013, 12, 31, 8, 0), key="when"
    )
    departure = when.strftime("%Y-%m-%dT%H:%M") if when else ""
    return {"carrier": carrier, "origin": origin, "dest": dest, "sched_dep_at": departure}


def show_prediction(url: str, flight: dict[str, str]) -> None:
    try:
        answer = support.predict(url, flight)
    except OneRingError as err:
        st.error(str(err))
        return
    left, middle, right = st.columns(3)
    left.metric("P(arrives > 15 min late)", f"{answer.probability:.1%}")
    middle.metric("Verdict", "late" if answer.late else "on time")
    right.metric("Model version", answer.model_version)
    for fallback in answer.fallbacks:
        st.info(str(fallback.get("message", fallback)))


def show_drift() -> None:
    st.header("Drift")
    found = summaries(lake())
    if not found:
        st.info(
            "No drift report yet: run `onering materialize --select "
            "'key:\"ml/drift_report\"' --partition 2013-12`."
        )
        return
    month, summary = list(found.items())[-1]
    left, middle, right = st.columns(3)
    left.metric("Latest report", month)
    middle.metric(
        "Drifted columns",
        f"{len(summary.drifted_columns)} of {len(summary.columns)}",
        f"{summary.share:.0%}",
        delta_color="inverse",
    )
    right.metric("Dataset drift", "yes" if summary.dataset_drift else "no")
    columns = support.columns_frame(summary)
    bars = (
        alt.Chart(columns)
        .mark_bar()
        .encode(
            x=alt.X("score:Q", title="drift score"),
            y=alt.Y("column:N", sort=None, title=None),
            color=alt.Color("drifted:N", scale=alt.Scale(range=["#4c78a8", "#e45756"])),
            tooltip=["column", "test", "score", "threshold", "drifted"],
        )
    )
    ticks = (
        alt.Chart(columns)
        .mark_tick(color="black", thickness=2)
        .encode(x="threshold:Q", y=alt.Y("column:N", sort=None))
    )
    st.altair_chart(bars + ticks, width="stretch")
    if len(found) > 1:
        st.line_chart(support.shares_frame(found), x="month", y="share_of_drifted_columns")
    st.dataframe(columns, hide_index=True)
    st.caption(DEFAULTS)
    st.caption(f"Evidently's page: {month_uri(lake(), month, 'report.html')}")


st.title("Will this flight arrive more than 15 minutes late?")
with st.sidebar:
    url = st.text_input("Prediction service", support.endpoint(), key="endpoint")
    st.caption("`onering serve` starts it; `ONERING_SERVE_URL` sets the default.")
source = st.radio("Flight", ["From the schedule", "Type one in"], horizontal=True, key="source")
try:
    flight = pick_from_schedule() if source == "From the schedule" else type_one_in()
except OneRingError as err:
    st.error(str(err))
    flight = None
if flight is not None and st.button("Predict", type="primary", key="predict"):
    show_prediction(url, flight)
try:
    show_drift()
except OneRingError as err:
    st.error(str(err))

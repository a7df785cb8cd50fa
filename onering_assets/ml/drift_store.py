"""Where drift reports live in the lake: ``<lake>/ml/drift/<month>/``.

Each month's folder holds Evidently's page (``report.html``), its snapshot
(``report.json``) and OneRing's summary (``summary.json``, what the asset's metadata and
the Streamlit app show). A local lake is a folder; on S3 the same paths sit under the
bucket prefix. Every file is written beside its final name and moved into place, so a
reader sees the previous report or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os

import dagster as dg
import pyarrow.fs as pafs

from onering_assets.errors import ConfigError
from onering_assets.ml.drift import DriftReport, DriftSummary
from onering_assets.partitions import MONTH_KEY, month_key
from onering_assets.resources.lake import LakeResource
from onering_assets.settings import Settings

FOLDER = "ml/drift"
HTML = "report.html"
SNAPSHOT = "report.json"
SUMMARY = "summary.json"
# The digest of what the report was computed from (``drift_assets.report_key``); written
# last, so a report interrupted half-way never matches.
KEY = "inputs.sha256"


def lake_for(settings: Settings) -> LakeResource:
    """The profile's lake outside a Dagster run (its ``EnvVar`` settings read now)."""
    from onering_assets.definitions import resources_for

    lake = resources_for(settings)["lake"]
    if not isinstance(lake, LakeResource):
        raise ConfigError("the definitions' `lake` resource is not a LakeResource.")
    values = {name: getattr(lake, name) for name in type(lake).model_fields}
    resolved = {k: v.get_value() if isinstance(v, dg.EnvVar) else v for k, v in values.items()}
    if not resolved.get("url"):
        raise ConfigError("the lake's url is not set (ONERING_LAKE_URL on the compose profile).")
    return LakeResource.model_validate(resolved)


def _base(lake: LakeResource) -> tuple[pafs.FileSystem, str]:
    return lake._filesystem()  # one filesystem per lake url, as retention.py does


def month_uri(lake: LakeResource, month: str, name: str = "") -> str:
    """Where a month's report (or one of its files) is, as a user would open it."""
    return f"{lake.url.rstrip('/')}/{FOLDER}/{month_key(month)}/{name}".rstrip("/")


def report_uris(lake: LakeResource, month: str) -> dict[str, str]:
    """``{"html", "json", "summary"}``: where the month's files are."""
    return {
        kind: month_uri(lake, month, name)
        for kind, name in (("html", HTML), ("json", SNAPSHOT), ("summary", SUMMARY))
    }


def write_report(
    lake: LakeResource, month: str, report: DriftReport, key: str = ""
) -> dict[str, str]:
    """Replace the month's three files (then its ``key``, if given); return their URIs."""
    fs, base = _base(lake)
    folder = f"{base}/{FOLDER}/{month_key(month)}"
    fs.create_dir(folder, recursive=True)
    # The old key goes first: a write that stops half-way leaves files that match no key.
    with contextlib.suppress(FileNotFoundError):
        fs.delete_file(f"{folder}/{KEY}")
    files = [
        (HTML, report.html),
        (SNAPSHOT, report.snapshot_json),
        (SUMMARY, json.dumps(report.summary.to_dict(), indent=1)),
        *([(KEY, key)] if key else []),
    ]
    for name, text in files:
        tmp = f"{folder}/.{name}.{os.getpid()}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(text.encode())
        fs.move(tmp, f"{folder}/{name}")
    return report_uris(lake, month)


def read_key(lake: LakeResource, month: str) -> str:
    """The digest the month's report was computed from ("" when none was recorded)."""
    fs, base = _base(lake)
    try:
        with fs.open_input_stream(f"{base}/{FOLDER}/{month_key(month)}/{KEY}") as source:
            return source.read().decode().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return ""


def read_summary(lake: LakeResource, month: str) -> DriftSummary | None:
    """The month's summary, or None when no report was written for it."""
    fs, base = _base(lake)
    path = f"{base}/{FOLDER}/{month_key(month)}/{SUMMARY}"
    try:
        with fs.open_input_stream(path) as source:
            data = json.loads(source.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{month_uri(lake, month, SUMMARY)} is unreadable ({err}).") from None
    return DriftSummary.from_dict(data)


def report_months(lake: LakeResource) -> list[str]:
    """Months with a written summary, oldest first."""
    fs, base = _base(lake)
    selector = pafs.FileSelector(f"{base}/{FOLDER}", allow_not_found=True)
    months = [
        info.base_name
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.Directory and MONTH_KEY.match(info.base_name)
    ]
    return [
        m
        for m in sorted(months)
        if fs.get_file_info(f"{base}/{FOLDER}/{m}/{SUMMARY}").type == pafs.FileType.File
    ]


def summaries(lake: LakeResource) -> dict[str, DriftSummary]:
    """Every month's summary, oldest first."""
    out = {}
    for month in report_months(lake):
        summary = read_summary(lake, month)
        if summary is not None:
            out[month] = summary
    return out

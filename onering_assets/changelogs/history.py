"""What a ``databasechangelog`` says was applied, matched with the changesets on disk.

Shared by Gold's applier (Postgres) and Silver's (ClickHouse): a changeset is identified by
id, author and path (ignoring case, as Liquibase's ``RanChangeSet.isSameAs``), compared by
its ``8:`` checksum, and refused when it was edited after it was applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from onering_assets.changelogs.formatted import Changeset, java_trim
from onering_assets.errors import ChangelogError, ConfigError


@dataclass(frozen=True)
class Ran:
    """One row of ``databasechangelog``: a changeset some tool recorded as applied."""

    id: str
    author: str
    filename: str
    md5sum: str | None
    comments: str | None


@dataclass
class Plan:
    """What to do with the changelog: rows to bring up to date, changesets to run."""

    upgrades: list[tuple[Ran, Changeset]] = field(default_factory=list)
    pending: list[Changeset] = field(default_factory=list)


def _key(id_: str, author: str, filename: str) -> tuple[str, str, str]:
    # Liquibase's RanChangeSet.isSameAs compares id, author and path ignoring case.
    return id_.lower(), author.lower(), filename.replace("\\", "/").lower()


def legacy_checksum(changeset: Changeset) -> str:
    """The ``comments`` value OneRing wrote before it recorded Liquibase's checksum."""
    statements = "\n".join(
        line for line in changeset.sql.splitlines() if not line.lstrip().startswith("--")
    ).strip()
    return "sha256:" + hashlib.sha256(statements.encode()).hexdigest()[:32]


def _refuse_edit(changeset: Changeset, recorded: str, store: str) -> ChangelogError:
    return ChangelogError(
        f"Changeset {changeset.label} in {changeset.filename} ({changeset.path}) was edited"
        f" after it was applied to {store} (recorded {recorded}, the file now gives"
        f" {changeset.checksum}). Restore it and add a new changeset for the change; OneRing"
        " supports neither runOnChange nor rollback. To accept the edit on purpose, add"
        f" '--validCheckSum: {changeset.checksum}' under its --changeset line."
    )


def _verify(changeset: Changeset, row: Ran, store: str) -> None:
    stored = row.md5sum
    if stored and stored.startswith("8:"):
        if not changeset.accepts(stored):
            raise _refuse_edit(changeset, stored, store)
        return
    legacy = row.comments or ""
    # No Liquibase checksum: only an earlier OneRing's sha256 can tell an edit (else accept,
    # as Liquibase accepts a NULL md5sum and fills it in).
    edited = legacy.startswith("sha256:") and legacy != legacy_checksum(changeset)
    if edited and not changeset.accepts(None):
        raise _refuse_edit(changeset, f"{legacy} by an earlier OneRing", store)


def plan_changesets(changesets: list[Changeset], rows: list[Ran], store: str = "Gold") -> Plan:
    """Match changesets with recorded rows; refuse edited or duplicated changesets."""
    by_key = {_key(r.id, r.author, r.filename): r for r in rows}
    plan = Plan()
    seen: set[tuple[str, str, str]] = set()
    for cs in changesets:
        key = _key(cs.id, cs.author, cs.filename)
        if key in seen:
            raise ConfigError(f"Changeset {cs.label} appears twice in {cs.filename}.")
        seen.add(key)
        row = by_key.get(key)
        if row is None:
            # An earlier OneRing recorded the bare file name instead of Liquibase's path.
            row = by_key.get(_key(cs.id, cs.author, PurePosixPath(cs.filename).name))
        if row is None:
            plan.pending.append(cs)
            continue
        _verify(cs, row, store)
        stale = not (row.md5sum or "").startswith("8:")
        if stale or row.filename != cs.filename:
            plan.upgrades.append((row, cs))
    return plan


def comments(cs: Changeset) -> str:
    """The ``comments`` column: ``MarkChangeSetRanGenerator`` trims, then cuts to 250."""
    text = java_trim(cs.comments or "")
    return text if len(text) <= 250 else text[:247] + "..."


def deployment_id(now_ns: int) -> str:
    """``AbstractChangeLogHistoryService.generateDeploymentId``: last 10 digits of epoch ms."""
    return str(now_ns // 1_000_000)[-10:]

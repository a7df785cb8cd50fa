"""Liquibase 4.3 formatted-SQL changelogs, read the way Liquibase itself reads them.

The identity (id, author, file path) and the checksum of each changeset follow Liquibase
4.3.3's ``FormattedSqlChangeLogParser``, ``AbstractSQLChange.NormalizingStream``,
``ChangeSet.generateCheckSum`` and ``DatabaseChangeLog.includeAll`` line by line, so the
rows OneRing writes to ``databasechangelog`` are the rows Liquibase would write, and the
tests compare them with what the real Liquibase 4.3.3 writes.

Liquibase records the path of each included file as it resolved it: the root changelog's
path as given on its command line, plus ``changelog/<file>``. OneRing records
``changelog/<file>``, which is what Liquibase records when it runs from this folder with
``--changeLogFile=changelog-root.yaml`` (the ``liquibase.properties`` beside it says so).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from onering_assets.errors import ConfigError

# The version OneRing's rows imitate: the checksum algorithm (``8:``) and row layout are 4.3's.
LIQUIBASE_VERSION = "4.3.3"
CHANGELOG_DIR = "changelog"
ANY_CHECKSUM = frozenset({"any", "all", "*"})

_HEADER = re.compile(r"--\s*liquibase formatted.*", re.IGNORECASE)
_LOGICAL_PATH = re.compile(r".*logicalFilePath:(\S*).*", re.IGNORECASE)
_CHANGESET = re.compile(r"\s*--\s*changeset\s+([^:]+):(\S+)(.*)", re.IGNORECASE)
_COMMENT = re.compile(r"--\s*comment:? (.*)", re.IGNORECASE)
_VALID_CHECKSUM = re.compile(r"--\s*validCheckSum:? (.*)", re.IGNORECASE)
_ROLLBACK = re.compile(r"\s*--\s*rollback (.*)", re.IGNORECASE)
_UNSUPPORTED_LINE = re.compile(r"\s*--\s*(preconditions|precondition-|ignoreLines:)", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"(\w+):(\"[^\"]*\"|\S*)")
# Attributes that only change the checksum (OneRing sends each changeset as one script).
_CHECKSUM_ATTRIBUTES = {"stripcomments", "splitstatements"}
_ROLLBACK_ATTRIBUTES = {"rollbacksplitstatements", "rollbackenddelimiter"}
_WHITESPACE = re.compile(r"[ \t\n\r]+")
_JAVA_TRIM = "".join(chr(c) for c in range(33))
_OTHER_FORMATS = {".xml", ".yaml", ".yml", ".json"}


@dataclass(frozen=True)
class Changeset:
    """One changeset: its Liquibase identity, its SQL and what its checksum depends on."""

    author: str
    id: str
    filename: str
    sql: str
    path: Path
    comments: str | None = None
    valid_checksums: tuple[str, ...] = ()
    strip_comments: bool = True
    split_statements: bool = True

    @property
    def checksum(self) -> str:
        """Liquibase's ``8:<md5>`` checksum of this changeset."""
        return changeset_checksum(self.sql, None, self.split_statements, self.strip_comments)

    @property
    def label(self) -> str:
        return f"{self.author}:{self.id}"

    def accepts(self, stored: str | None) -> bool:
        """Whether a stored checksum still matches, as ``ChangeSet.isCheckSumValid`` decides.

        ``None`` asks whether the changeset accepts any edit of its applied content: when
        its ``--validCheckSum`` lines say ``ANY`` or list its current checksum.
        """
        valid = {v.strip().lower() for v in self.valid_checksums}
        current = self.checksum
        return bool(valid & ANY_CHECKSUM) or current in valid or stored in (current, *valid)


def changeset_checksum(
    sql: str, end_delimiter: str | None, split_statements: bool, strip_comments: bool
) -> str:
    """The checksum Liquibase 4.3 stores for a changeset made of one SQL change.

    The change's checksum is the MD5 of ``endDelimiter:splitStatements:stripComments:``
    followed by the SQL with each run of whitespace made one space and the ends trimmed;
    the changeset's is the MD5 of ``<change checksum>:``. Both are written ``8:<hex>``.
    """
    header = f"{'null' if end_delimiter is None else end_delimiter}:"
    header += f"{str(split_statements).lower()}:{str(strip_comments).lower()}:"
    body = _WHITESPACE.sub(" ", sql).strip(" ")
    change = "8:" + hashlib.md5((header + body).encode()).hexdigest()
    text = unicodedata.normalize("NFC", f"{change}:".replace("\ufffd", ""))
    return "8:" + hashlib.md5(text.encode()).hexdigest()


def changelog_files(liquibase_dir: Path) -> list[Path]:
    """The files ``includeAll: changelog/`` reads, in Liquibase's order (path, recursively)."""
    folder = liquibase_dir / CHANGELOG_DIR
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        if path.suffix.lower() in _OTHER_FORMATS:
            raise ConfigError(
                f"{path}: OneRing applies only formatted-SQL changelogs; write this change as a"
                " '--liquibase formatted sql' file."
            )
    return sorted((p for p in files if p.suffix == ".sql"), key=lambda p: p.as_posix())


def read_changelog(liquibase_dir: Path) -> list[Changeset]:
    """Every changeset under ``changelog/``, in the order Liquibase runs them."""
    changesets: list[Changeset] = []
    for path in changelog_files(liquibase_dir):
        changesets.extend(read_changesets(path, liquibase_dir))
    return changesets


def _lines(text: str) -> list[str]:
    # Java's readLine: \n, \r and \r\n end a line, and a final newline adds no empty line.
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def java_trim(text: str) -> str:
    """Java's ``String.trim()``: drops every character up to and including the space."""
    return text.strip(_JAVA_TRIM)


@dataclass
class _Draft:
    author: str
    id: str
    attributes: dict[str, str]
    sql: list[str] = field(default_factory=list)
    comments: str | None = None
    valid_checksums: list[str] = field(default_factory=list)


def read_changesets(path: Path, liquibase_dir: Path | None = None) -> list[Changeset]:
    """The changesets of one formatted-SQL file.

    Args:
        path: The ``.sql`` file.
        liquibase_dir: The folder of ``changelog-root.yaml``; the recorded file name is
            relative to it (``changelog/<file>``). Without it, the bare file name.
    """
    raw = path.read_bytes().decode("utf-8-sig")
    lines = _lines(raw)
    if not lines or not _HEADER.fullmatch(lines[0]):
        raise ConfigError(f"{path}: a changelog must start with '--liquibase formatted sql'.")
    logical = _LOGICAL_PATH.fullmatch(lines[0])
    if logical and logical.group(1):
        filename = logical.group(1)
    elif liquibase_dir is not None:
        filename = path.relative_to(liquibase_dir).as_posix()
    else:
        filename = path.name
    drafts: list[_Draft] = []
    for line in lines[1:]:
        _read_line(path, line, drafts)
    return [_finish(path, filename, draft) for draft in drafts]


def _read_line(path: Path, line: str, drafts: list[_Draft]) -> None:
    if _UNSUPPORTED_LINE.match(line):
        raise ConfigError(
            f"{path}: '{line.strip()}' is not supported by OneRing's changelog applier;"
            " express the condition in SQL or split the changeset."
        )
    start = _CHANGESET.fullmatch(line)
    if start:
        attributes = {k: v.strip('"') for k, v in _ATTRIBUTE.findall(start.group(3))}
        drafts.append(_Draft(start.group(1), start.group(2), attributes))
        return
    if not drafts:
        return
    draft = drafts[-1]
    if comment := _COMMENT.fullmatch(line):
        draft.comments = comment.group(1)
    elif valid := _VALID_CHECKSUM.fullmatch(line):
        draft.valid_checksums.append(valid.group(1))
    elif not _ROLLBACK.fullmatch(line):
        draft.sql.append(line + "\n")


def _finish(path: Path, filename: str, draft: _Draft) -> Changeset:
    label = f"changeset {draft.author}:{draft.id} in {path}"
    # Liquibase matches attribute names ignoring case.
    attributes = {k.lower(): v for k, v in draft.attributes.items()}
    logical = attributes.get("logicalfilepath") or filename
    ignored = _CHECKSUM_ATTRIBUTES | _ROLLBACK_ATTRIBUTES | {"logicalfilepath"}
    unsupported = sorted(k for k in draft.attributes if k.lower() not in ignored)
    if unsupported:
        raise ConfigError(
            f"{label} uses {', '.join(unsupported)}, which OneRing's changelog applier does not"
            " support (runOnChange, runAlways, contexts, labels, dbms and custom delimiters"
            " are not); remove it, and add a new changeset for a new change."
        )
    sql = java_trim("".join(draft.sql))
    if not sql:
        raise ConfigError(f"{label} has no SQL.")
    if sql.endswith("\n/") or "${" in sql:
        # Liquibase would switch to the '/' delimiter or expand ${...} changelog parameters.
        raise ConfigError(
            f"{label} uses a '/' delimiter or a ${{...}} parameter, which OneRing does not support."
        )
    return Changeset(
        author=draft.author,
        id=draft.id,
        filename=logical,
        sql=sql,
        path=path,
        comments=draft.comments,
        valid_checksums=tuple(draft.valid_checksums),
        strip_comments=attributes.get("stripcomments", "true").lower() == "true",
        split_statements=attributes.get("splitstatements", "true").lower() == "true",
    )

"""The one exception hierarchy for errors a OneRing user can hit."""


class OneRingError(Exception):
    """Base class: the message says what went wrong and what to do.

    ``retryable``: whether running the same thing again may succeed (a busy or stopped
    store) or cannot until someone changes something (a declaration, a corrupt file). The
    Airflow bridge retries only the first kind.
    """

    retryable = True


class ConfigError(OneRingError):
    """A setting, profile or declaration is invalid."""

    retryable = False


class StoreBusyError(OneRingError):
    """An embedded store is held by another process."""


class SourceError(OneRingError):
    """Landed source data cannot be read."""


class ReadOnlyError(OneRingError):
    """A statement that writes was sent to a read-only entry point."""

    retryable = False


class NothingSelectedError(ConfigError):
    """An asset selection is valid but picks no asset (`onering materialize` exits 3)."""


class ChangelogError(ConfigError):
    """A changeset already applied (Gold or Silver) was edited, failed, or a table is undeclared."""


class QueryError(OneRingError):
    """A store could not run a read (unknown table, its own syntax error, no connection)."""


class PostgresDownError(OneRingError):
    """The Gold Postgres stopped (or cannot be started or reached) during a run or a query.

    Not a data problem: no transaction was left half-done, and a re-run may succeed (the
    embedded server is started again by the next connection), so the run is retryable.
    """


class UpstreamChangedError(OneRingError):
    """What a check reconciles against is mid-change: another run is rebuilding it.

    E.g. a month landed in Bronze whose Silver build has not published yet (or failed).
    Nothing was published; a re-run after that run finishes succeeds, so it is retryable.
    """


class CorruptLakeFileError(OneRingError):
    """A published lake file cannot be read (truncated or overwritten); re-ingest its partition.

    Nothing is published from it; a plain retry fails the same way until it is re-ingested.
    """

    retryable = False


def _all() -> list[type[OneRingError]]:
    """OneRingError and every subclass of it, at any depth."""
    found, todo = [], [OneRingError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def not_retryable() -> frozenset[str]:
    """Class names of the errors a retry cannot fix (as Dagster records them)."""
    return frozenset(cls.__name__ for cls in _all() if not cls.retryable)


def onering_errors() -> frozenset[str]:
    """Class names of every OneRing error (as Dagster records them)."""
    return frozenset(cls.__name__ for cls in _all())

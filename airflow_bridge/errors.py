"""The bridge's exceptions: their messages say what to change.

The operator maps them onto Airflow's outcomes: :class:`InvalidRunRequestError` and
:class:`ChecksFailedError` fail the task without retry (retrying cannot fix bad conf or bad
data), :class:`NothingSelectedError` skips it, and :class:`RunFailedError` is an ordinary error, so
Airflow retries it as ``retries`` in bridge.yml says.
"""


class BridgeError(Exception):
    """An invalid render config or manifest, or a failed Dagster run behind a task."""


class InvalidRunRequestError(BridgeError):
    """Bad dag_run.conf or selection: the task fails, no retry."""


class NothingSelectedError(BridgeError):
    """The run's selection picks none of the task's assets: the task skips."""


class ChecksFailedError(BridgeError):
    """Blocking checks failed (a data problem): the task fails, no retry."""


class RunFailedError(BridgeError):
    """The Dagster run failed otherwise (busy store, lost connection, killed process...).

    Retryable: the task fails and Airflow retries it.
    """

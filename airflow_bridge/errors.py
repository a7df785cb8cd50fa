"""The bridge's one exception type: its messages say what to change."""


class BridgeError(Exception):
    """An invalid render config or manifest, or a failed Dagster run behind a task."""

"""Where the flight events are: a Pulsar URL and topic (local: pulsar-lite under the state)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from onering_assets.errors import ConfigError
from onering_assets.settings import Settings
from onering_assets.stream import broker, consume
from onering_assets.stream.events import DEFAULT_TOPIC


class PulsarResource(dg.ConfigurableResource):
    """A Pulsar service URL, or the folder of the local pulsar-lite started on first use.

    ``max_messages`` and ``max_seconds`` bound one batch; it ends early once it has received
    the message that was the topic's last when it began, or when no message arrives for
    ``idle_ms`` (the only end when the broker cannot name its last message). The default
    batch is Pulsar's default limit of unacknowledged messages per consumer
    (``consume.UNACKED_LIMIT``): past it the broker sends nothing until the batch acknowledges.
    """

    url: str | None = None
    broker_dir: str | None = None
    topic: str = DEFAULT_TOPIC
    max_messages: int = consume.UNACKED_LIMIT
    idle_ms: int = 2_000
    max_seconds: float = 60.0

    def service_url(self) -> str:
        if self.url:
            return self.url
        if not self.broker_dir:
            raise broker.BrokerError("Set ONERING_PULSAR_URL, or give the local broker a folder.")
        return broker.start(Path(self.broker_dir)).url


PULSAR_URL_ENV = "ONERING_PULSAR_URL"


def pulsar_dir(settings: Settings) -> Path:
    return settings.state_dir / "pulsar"


def named_broker() -> str:
    """``ONERING_PULSAR_URL`` when set: the broker every profile then uses ("" when unset)."""
    return os.environ.get(PULSAR_URL_ENV, "").strip()


def pulsar_resource(settings: Settings) -> PulsarResource:
    """The broker the stream asset consumes from.

    ``ONERING_PULSAR_URL`` when set (read now, locally); else local pulsar-lite under
    ``<state>/pulsar``; compose requires the variable (read at run).
    """
    if settings.profile == "local":
        if named_broker():
            return PulsarResource(url=named_broker())
        return PulsarResource(broker_dir=str(pulsar_dir(settings)))
    return PulsarResource(url=dg.EnvVar(PULSAR_URL_ENV))


def stream_url(settings: Settings) -> str:
    """The broker a command uses outside a run.

    ``ONERING_PULSAR_URL`` when set (read here: only inside a run does Dagster resolve the
    resource's EnvVar), else the local one (started if needed); compose requires it.
    """
    if named_broker():
        return named_broker()
    if settings.profile == "local":
        return broker.start(pulsar_dir(settings)).url
    raise ConfigError(f"Set {PULSAR_URL_ENV} to the Pulsar broker (pulsar://host:6650).")

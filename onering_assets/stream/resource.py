"""Where the flight events are: a Pulsar URL and topic (local: pulsar-lite under the state)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from onering_assets.settings import Settings
from onering_assets.stream import broker
from onering_assets.stream.events import DEFAULT_TOPIC


class PulsarResource(dg.ConfigurableResource):
    """A Pulsar service URL, or the folder of the local pulsar-lite started on first use.

    ``max_messages`` bounds one batch; ``idle_ms`` ends it early when no message arrives for
    that long (the topic is drained).
    """

    url: str | None = None
    broker_dir: str | None = None
    topic: str = DEFAULT_TOPIC
    max_messages: int = 100_000
    idle_ms: int = 2_000

    def service_url(self) -> str:
        if self.url:
            return self.url
        if not self.broker_dir:
            raise broker.BrokerError("Set ONERING_PULSAR_URL, or give the local broker a folder.")
        return broker.start(Path(self.broker_dir)).url


def pulsar_dir(settings: Settings) -> Path:
    return settings.state_dir / "pulsar"


def pulsar_resource(settings: Settings) -> PulsarResource:
    """Local: pulsar-lite under ``<state>/pulsar``; compose: ``ONERING_PULSAR_URL``."""
    if settings.profile == "local":
        return PulsarResource(broker_dir=str(pulsar_dir(settings)))
    return PulsarResource(url=dg.EnvVar("ONERING_PULSAR_URL"))

"""A free TCP port on loopback, for the local clusters OneRing starts (Spark, Flink)."""

import socket


def free_port() -> int:
    """A port nothing listens on now (the OS's pick); a daemon binds it moments later."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

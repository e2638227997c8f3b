"""The tests use the package's local-cluster helpers (emostream.cluster.local)."""

from emostream.cluster.local import NatsServer, Processes, free_port, nats_server_binary, wait_port

__all__ = ["NatsServer", "Processes", "free_port", "nats_server_binary", "wait_port"]

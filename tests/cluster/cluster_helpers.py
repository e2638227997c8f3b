"""The tests use the package's local-cluster helpers (emostream.cluster.local)."""

import time

import numpy as np
from services import self_signed_cert

from emostream.cluster.local import NatsServer, Processes, free_port, nats_cluster, nats_server_binary, wait_port
from emostream.streaming.frames import Utterance

__all__ = ["NatsServer", "Processes", "free_port", "make_utterance", "nats_cluster", "nats_server_binary",
           "self_signed_cert", "wait_port"]


def make_utterance(seq: int, sid: str = "s", age_s: float = 0.0, n: int = 8000) -> Utterance:
    """Half a second of noise as a closed utterance (queue tests need audio, not speech)."""
    rng = np.random.default_rng(seq)
    return Utterance(stream_id=sid, seq=seq, start_s=seq * 1.0, end_s=seq * 1.0 + n / 16000,
                     samples=(0.1 * rng.standard_normal(n)).astype(np.float32), closed_wall=time.time() - age_s,
                     closed_perf=time.perf_counter() - age_s)

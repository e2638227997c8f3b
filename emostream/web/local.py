"""``emostream serve``'s parts around a loaded recognizer: the pipeline in this process, its sink as
the WebSocket server's feed, the server on its own loop thread.

The command runs it until a signal; the page benchmark and the browser-processing study run it in a
thread with the models they already hold (``running``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from emostream.streaming.loop import LoopThread
from emostream.streaming.pipeline import Pipeline, PipelineConfig
from emostream.web.feed import LocalResultFeed
from emostream.web.gateway import Gateway, GatewayConfig, GatewayHooks


class LocalServer:
    def __init__(self, recognizer, config: GatewayConfig, pipeline_config: PipelineConfig, publisher=None) -> None:
        self.config = config
        self.loop = LoopThread("serve")
        self.feed = LocalResultFeed(self.loop.loop)
        self.gateway: Gateway | None = None
        self.pipeline = Pipeline(recognizer, [], [self.feed], pipeline_config, publisher=publisher, open_ended=True,
                                 hooks=GatewayHooks(lambda: self.gateway.status()))  # the server exists before it runs
        self.gateway = Gateway(config, self.feed, self.pipeline)

    def start(self) -> int:
        """Listen (OSError if the address is taken) and return the port."""
        self.loop.call(self.gateway.start())
        return self.gateway.port

    def stop(self) -> None:
        """End every stream (last results, close 1001), then let the pipeline finish."""
        self.gateway.stop(self.loop)

    def close(self) -> None:
        self.loop.stop()

    def url(self) -> str:
        return self.config.page_url(self.gateway.port)


@contextmanager
def running(recognizer, config: GatewayConfig, pipeline_config: PipelineConfig) -> Iterator[LocalServer]:
    """The server with its pipeline in a background thread, stopped and joined on exit."""
    server = LocalServer(recognizer, config, pipeline_config)
    try:
        server.start()
        thread = threading.Thread(target=server.pipeline.run, name="serve-pipeline", daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.stop()
            thread.join(timeout=60)
    finally:
        server.close()

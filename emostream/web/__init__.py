"""The WebSocket audio endpoint and the browser page, over either result feed: the bus (``gateway``)
or the pipeline in this process (``serve``)."""

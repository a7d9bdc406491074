"""The story server's tests: the engine, the HTTP API, its security and the page, on a real server."""

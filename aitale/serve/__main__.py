"""Serve the exported story model over HTTP: ``python -m aitale.serve`` (``make serve``).

Every setting is a flag here and an ``AITALE_SERVE_<NAME>`` environment variable (a flag wins).
It loads no torch: onnxruntime, tokenizers and the content screen only. SIGTERM drains: the
server stops accepting connections, finishes the requests in flight, then exits.

A load test from this machine: run the server without API keys on loopback (the default). There a
caller is this machine and no per-key limits apply, so the engine is what is measured; raise
--max-in-flight (64) above the clients you send at once, and send seeded requests with
--cache-entries 0 (or unseeded ones) so that the cache does not answer them. With API keys every
key keeps its limits (--key-rate-per-minute, --key-burst, --key-in-flight). benchmarks/serve_load.py
does all this.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from pydantic import ValidationError

from aitale.serve.settings import ServeSettings

log = logging.getLogger("aitale.serve")


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m aitale.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, field in ServeSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = f"AITALE_SERVE_{name.upper()}"
        if field.annotation is bool:
            result.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{field.description} (${env}; default: {field.default})",
            )
        else:
            result.add_argument(
                flag, default=None, metavar=name.upper(), help=f"{field.description} (${env}; default: {field.default})"
            )
    return result


def settings_from(argv: list[str] | None) -> ServeSettings:
    args = parser().parse_args(argv)
    given = {name: value for name, value in vars(args).items() if value is not None}
    return ServeSettings(**given)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        settings = settings_from(argv)
    except ValidationError as err:
        for error in err.errors():
            name = str(error["loc"][0]) if error["loc"] else "settings"
            log.error("--%s (AITALE_SERVE_%s): %s", name.replace("_", "-"), name.upper(), error["msg"])
        return 2
    if not _keys_allowed(settings):
        return 2
    if settings.log_text:
        log.warning("--log-text is on: prompts and stories are written to the log; turn it off outside debugging")
    import uvicorn

    from aitale.serve.app import create_app
    from aitale.serve.limits import timed_protocol

    app = create_app(settings)
    log.info(
        "serving %s on http://%s:%d (batch %d, %s)",
        settings.model_dir,
        settings.host,
        settings.port,
        settings.max_batch,
        settings.variant,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=int(settings.request_timeout_s),
        http=timed_protocol(settings.read_timeout_s),
    )

    class DrainingServer(uvicorn.Server):
        def capture_signals(self):
            return _Signals(self)

    DrainingServer(config).run()
    return 0


def _keys_allowed(settings: ServeSettings) -> bool:
    """Whether the server may start with the API keys it has: it refuses (False, with the reason logged) a
    keys file it cannot read, and a public address without keys unless the settings allow it."""
    from aitale.serve.security import is_loopback

    try:
        keys = settings.keys()
    except OSError as err:
        log.error("--api-keys-file: %s", err)
        return False
    if not keys:
        if not is_loopback(settings.host) and not settings.allow_public_without_keys:
            log.error(
                "no API keys are set, so the server only listens on loopback: set AITALE_SERVE_API_KEYS "
                "(or --api-keys-file) to listen on %s, or pass --allow-public-without-keys",
                settings.host,
            )
            return False
        log.warning(
            "no API keys: anyone who can reach %s:%d may call the API%s",
            settings.host,
            settings.port,
            " (loopback only)" if is_loopback(settings.host) else "",
        )
    return True


class _Signals:
    """SIGTERM and SIGINT start uvicorn's graceful shutdown; unlike uvicorn's own handling, the signal is
    not raised again afterwards, so a server that drained its requests exits 0 rather than 143."""

    def __init__(self, server) -> None:
        self.server = server

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self.server.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())

"""`fashionrec serve`: the JSON API and the web page over one home, until interrupted."""

from __future__ import annotations

import os
import signal
import socket
from contextlib import nullcontext, suppress
from typing import Annotated

import typer

from cli.common import HomeOption, TaxonomyOption, UrlOption, console, errors, fail, settings
from engine.settings import Settings
from serve.restarts import HUNG_S


def listening(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (listening starts with the server); a one-line error when
    the address is taken or unknown."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise fail(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def _serve_workers(
    config: Settings,
    sock: socket.socket,
    host: str,
    port: int,
    access: tuple[bool, bool, str],
    count: int,
    hung_s: float,
) -> None:
    """The service in `count` worker processes (serve/workers.py) until Ctrl-C."""
    import logging

    from serve.main import loopback_hosts
    from serve.workers import Spec, supervise

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    shown = f"[{host}]" if ":" in host else host
    where = config.qdrant_url or config.home
    console.print(
        f"serving {where} on http://{shown}:{port}/ with {count} workers (API docs at "
        "/docs); Ctrl-C stops",
        soft_wrap=True,
    )
    private, private_search, key = access
    spec = Spec(
        config, host, port, private, key, loopback_hosts(host), private_search, hung_s=hung_s
    )
    supervise(spec, sock, count)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C."""
    raise KeyboardInterrupt


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    private: Annotated[
        bool,
        typer.Option("--private", help="Reads need the API key too ($FASHIONREC_API_KEY)."),
    ] = False,
    private_search: Annotated[
        bool,
        typer.Option(
            "--private-search",
            help="POST /search needs the API key (a network runs for each photo).",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Processes answering side by side (default: the machine's cores); over the "
            "embedded store each serves a copy of its own.",
        ),
    ] = None,
    worker_timeout: Annotated[
        float,
        typer.Option(
            min=2.0,
            help="With workers: one whose event loop is silent, or whose one call runs, this "
            "many seconds is hung, killed and started again.",
        ),
    ] = HUNG_S,
    taxonomy: TaxonomyOption = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Serve the JSON API (docs at /docs) and the web page (/) until Ctrl-C.

    The service holds the store and the event log open while it runs. With
    $FASHIONREC_API_KEY set, every write (POST, PATCH, DELETE) needs `Authorization: Bearer
    <key>` (and with --private every read but the page). With several workers over the
    embedded store, each holds a copy of the store (its disk and memory once per worker: see
    docs/deploy.md); purchases reach every worker within a second.
    """
    import logging

    import uvicorn

    from engine.application import Application
    from engine.settings import API_KEY_ENV
    from engine.vectorstore.holder import serving
    from serve.main import create_app, loopback_hosts

    key = os.environ.get(API_KEY_ENV) or None
    if (private or private_search) and key is None:
        flag = "--private" if private else "--private-search"
        raise fail(f"{flag} needs an API key: set {API_KEY_ENV}")
    if loopback_hosts(host) is None and key is None:
        errors.print(
            f"[bold yellow]warning:[/] listening on {host} without {API_KEY_ENV}: anyone who "
            "reaches this port can record purchases",
            soft_wrap=True,
        )
    config = settings(home, qdrant_url, taxonomy)
    count = workers or os.cpu_count() or 1
    if count > 1 and not config.qdrant_url and not config.store_path.is_dir():
        count = 1  # nothing to copy yet: one worker creates the store as it ingests
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    # one server a home, whatever its mode: a second would take over the store (or the
    # workers' copies) of the first; over a Qdrant server, replicas share it by design
    held = nullcontext() if config.qdrant_url else serving(config.serve_file, url)
    with held:
        sock = listening(host, port)
        try:
            if count > 1:
                access = (private, private_search, key or "")
                _serve_workers(config, sock, host, port, access, count, worker_timeout)
                return
            opened = Application.open(config, serving=True)  # this thread: the event loop's
            try:
                app = create_app(
                    config,
                    private=private,
                    api_key=key or "",
                    application=opened,
                    hosts=loopback_hosts(host),
                    warm_search=True,
                    private_search=private_search,
                )
                where = config.qdrant_url or config.home
                console.print(
                    f"serving {where} on {url}/ (API docs at /docs); Ctrl-C stops",
                    soft_wrap=True,
                )
                logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
                server = uvicorn.Server(
                    uvicorn.Config(app, host=host, port=port, access_log=False, log_level="info")
                )
                # uvicorn stops on SIGINT or SIGTERM, then raises the signal again: as an
                # interrupt, both end here, so the holder file goes and the store is closed
                signal.signal(signal.SIGTERM, _interrupt)
                with suppress(KeyboardInterrupt):
                    server.run(sockets=[sock])
            finally:
                opened.close()
        finally:
            sock.close()

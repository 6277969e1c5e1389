"""``serve``: the HTTP service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.store import DEFAULT_STORE

if TYPE_CHECKING:
    pass


from engine.cli.common import (
    DataDirOption,
    OverlayOption,
    PacksOption,
    app,
    fail,
    load_engine,
)

__all__ = ["serve"]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    store: Annotated[
        str, typer.Option(help="Verdict log: sqlite:///path (default) or postgresql://…")
    ] = DEFAULT_STORE,
    api_keys: Annotated[
        Path | None,
        typer.Option(
            "--api-keys",
            help="File of name:key lines (add ' auditor' to read every caller's checks); without it the service is open.",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per CPU).")] = None,
    pack: PacksOption = None,
    overlay: OverlayOption = None,
    data_dir: DataDirOption = None,
    webhook: Annotated[
        list[str] | None,
        typer.Option(help="POST each watch card to this URL (repeatable); retried until a 2xx."),
    ] = None,
) -> None:
    """Run the HTTP service (FastAPI + uvicorn): /v1/check, /v1/check/batch, /v1/rules, /docs, …"""
    from engine.api import load_api_keys
    from engine.api import serve as run_service

    if api_keys is not None:
        try:
            load_api_keys(api_keys)
        except OSError as exc:
            fail(f"--api-keys {api_keys}: {exc.strerror or exc}")
        except ValueError as exc:  # names the line that is not name:key
            fail(f"--api-keys: {exc}")
    load_engine("columnar", pack, overlay)  # a pack or overlay that cannot be loaded stops the start-up here
    for url in webhook or []:
        if not url.startswith(("http://", "https://")):
            fail(f"--webhook: {url!r} is not an http:// or https:// URL")
    run_service(
        host=host,
        port=port,
        store=store,
        api_keys=api_keys,
        workers=workers,
        packs=pack,
        overlay=overlay,
        webhooks=webhook or (),
    )

"""``lcid serve``: the local web app (upload, check, view, ask) on this computer."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on; the default keeps the app private to this computer."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on."),
    max_upload_mb: int = typer.Option(512, "--max-upload-mb", min=1, help="Largest upload accepted, MiB."),
    session_ttl_min: float = typer.Option(60.0, "--session-ttl-min", min=1, help="Minutes a check's files are kept."),
) -> None:
    """Open the web app: drop in a scan or a slice, see the findings, the viewer and ask questions."""
    import uvicorn

    from lcid.server.app import ServerConfig, create_app

    config = ServerConfig(max_upload_mb=max_upload_mb, session_ttl_s=session_ttl_min * 60)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"lcid serve: open http://{shown}:{port}/ in your browser (Ctrl+C stops it)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}: other computers on the network can reach this app", err=True)
    # No access log: request lines are not needed and logs stay free of anything about the uploads.
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)

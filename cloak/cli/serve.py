"""``cloak serve``: a local web page to protect photos without the command line."""

from __future__ import annotations

import click
from click.core import ParameterSource

from cloak.cli.options import device_option

__all__ = ["serve"]

#: The modules of the ``web`` extra, by the name ``ModuleNotFoundError`` reports.
_WEB_EXTRA = ("starlette", "uvicorn", "python_multipart")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on. Only this computer can reach the default; another "
                   "address (e.g. 0.0.0.0) lets others on the network upload photos and "
                   "download results, without password or encryption.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port; 0 picks a free one. The page's URL is printed.")
@click.option("--max-file-mb", type=click.FloatRange(0, min_open=True), default=25.0,
              show_default=True, help="Largest photo accepted, in MB.")
@click.option("--max-total-mb", type=click.FloatRange(0, min_open=True), default=200.0,
              show_default=True, help="Most MB of photos one browser session may upload.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for torch in each protection run (default: torch's choice).")
@device_option
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, max_file_mb: float, max_total_mb: float,
          threads: int | None, device: str) -> None:
    """Serve a web page that protects a person's photos, at http://127.0.0.1:8765/.

    Choose photos of one person on the page: they are protected as `cloak protect` does with
    its default settings (one mask learned from up to 10 photos, then added to the person's
    face in each), with the progress shown; then see each photo before and after, and
    download the protected photos (zip) and the mask file.

    Uploads are checked (size, and content: only photos cloak can read are kept), stored in a
    private temporary folder per browser session and deleted when the server stops (Ctrl-C).
    Nothing about the photos is logged. Needs the web extra: pip install 'cloak[web]'.
    """
    try:
        from cloak.web.app import is_local
        from cloak.web.app import serve as run_server
    except ModuleNotFoundError as err:
        missing = (err.name or "").split(".")[0]
        if missing not in _WEB_EXTRA:
            raise
        raise click.ClickException(f"cloak serve needs the web extra ({missing} is not "
                                   "installed): pip install 'cloak[web]'") from None
    from cloak.web.jobs import JobSettings
    from cloak.web.sessions import MB, Limits, SessionStore

    if not is_local(host):
        if ctx.get_parameter_source("host") is not ParameterSource.COMMANDLINE:
            raise click.UsageError(f"refusing to serve on {host}, which is not this computer "
                                   "only, unless it is given as --host")
        click.echo(f"warning: serving on {host}: anyone who can reach this address can "
                   "upload photos and download the protected photos and masks; there is no "
                   "password and no encryption (plain http)", err=True)
    limits = Limits(max_file_bytes=int(max_file_mb * MB), max_total_bytes=int(max_total_mb * MB))
    store = SessionStore(limits, JobSettings(device=device, threads=threads))

    def announce(url: str) -> None:
        click.echo(f"cloak serve: open {url} in your browser (Ctrl-C stops the server and "
                   f"deletes every uploaded photo and result)")
        click.echo(f"private temporary folder: {store.root}", err=True)

    try:
        run_server(store, host, port, announce)
    except KeyboardInterrupt:
        pass
    except OSError as err:
        raise click.ClickException(f"cannot serve on {host}:{port}: "
                                   f"{err.strerror or err}") from None
    # Ctrl-C: the server has shut down and removed every folder. uvicorn handles the signal and
    # usually re-raises it as KeyboardInterrupt once it has stopped, but on a loaded machine the
    # run was seen to return normally instead (exit 0, nothing said): say it either way.
    click.echo("cloak serve: stopped; every uploaded photo and result is deleted", err=True)

"""The ``cloak`` command line: one module per command, each only parsing options and reporting.

- :mod:`cloak.cli.models`: ``cloak models list|fetch``;
- :mod:`cloak.cli.protect`: ``cloak protect``;
- :mod:`cloak.cli.enroll`: ``cloak enroll`` (from photos or a video track);
- :mod:`cloak.cli.video`: ``cloak video``;
- :mod:`cloak.cli.serve`: ``cloak serve`` (a local web page; needs the ``web`` extra);
- :mod:`cloak.cli.check`: ``cloak check`` (would recognizers still match protected photos?);
- :mod:`cloak.cli.options` and :mod:`cloak.cli.reporting`: what protect and enroll share.

Commands that other packages register under the ``cloak.commands`` entry point group (e.g.
``benchmark`` from ``evaluation``) are offered too, imported only when one is run or listed.
Heavy modules (torch, the models) are imported inside commands, so ``cloak --help`` is fast.
Exit codes: 0 ok, 1 some inputs failed, 2 usage error.
"""

from __future__ import annotations

from typing import Any

import click

from cloak.cli import check, enroll, models, protect, serve, video

__all__ = ["main"]


class _PluginGroup(click.Group):
    """A group that also offers the commands registered under the ``cloak.commands`` entry
    point group (e.g. ``benchmark`` from ``evaluation``), imported only when one is run."""

    @staticmethod
    def _plugins() -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group="cloak.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and (plugin := self._plugins().get(cmd_name)) is not None:
            command = plugin.load()
        return command


@click.group(cls=_PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cloak")
def main() -> None:
    """cloak: protect a person's photos from face recognition with one learned mask.

    Models come from public package registries (PyPI, npm), are checked against
    sha256 and cached (override the cache folder with CLOAK_CACHE).
    """


main.add_command(models.models)
main.add_command(protect.protect)
main.add_command(enroll.enroll)
main.add_command(video.video)
main.add_command(check.check)
main.add_command(serve.serve)

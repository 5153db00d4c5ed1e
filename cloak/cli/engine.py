"""The options ``cloak video`` and ``cloak protect`` share: which engine runs the work
(:mod:`cloak.cluster`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cloak.cluster import ENGINES

__all__ = ["engine_options"]


def engine_options(engine_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--engine local|dask``, ``--workers N``, ``--scheduler ADDRESS``; ``engine_help`` says
    what each engine does with this command's work."""
    options = [
        click.option("--engine", type=click.Choice(ENGINES), default="local",
                     show_default=True, help=engine_help),
        click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
                     help="With --engine dask: worker processes of the local cluster (one "
                          "thread each)."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="With --engine dask: use this running scheduler (tcp://host:8786) "
                          "instead of starting a local cluster."),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate

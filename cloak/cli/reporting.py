"""How ``cloak protect``, ``enroll`` and ``video`` report: progress bars and notices on stderr,
a JSON summary or one line at the end, exit codes, and the pipeline's errors as one line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from attackers import zoo

__all__ = ["CliReporter", "clean_errors", "counts", "finish", "frame_progress"]


class CliReporter:
    """Shows a run on stderr: tqdm bars per stage, notices, one line per failed file."""

    def __init__(self, quiet: bool) -> None:
        from tqdm import tqdm

        self.quiet = quiet
        self.tqdm = tqdm
        self.bars: dict[str, Any] = {}

    def _say(self, line: str) -> None:
        self.tqdm.write(line, file=sys.stderr)

    def progress(self, stage: str, done: int, total: int) -> None:
        if self.quiet or total == 0:
            return
        bar = self.bars.get(stage)
        if bar is None:
            unit = "step" if stage in ("learning mask", "refining") else "photo"
            bar = self.bars[stage] = self.tqdm(total=total, desc=stage, unit=unit,
                                               file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self.bars[stage]

    def note(self, message: str) -> None:
        if not self.quiet:
            self._say(f"note: {message}")

    def file_done(self, result: Any) -> None:
        if result.status == "failed":
            self._say(f"error: {result.path}: {result.reason}")
        elif result.status in ("skipped", "not-person") and not self.quiet:
            self._say(f"skip: {result.path}: {result.reason}")
        for text in result.notes:
            self.note(f"{result.path}: {text}")


def finish(summary: Any, as_json: bool, quiet: bool, line: str) -> None:
    """Print the summary (JSON on stdout, or one line on stderr); exit 1 if anything failed.

    A run without a mask (no photo, or no face to learn from) also fails, with its own line.
    """
    no_mask = summary.mask_sha256 is None
    if not summary.files:
        click.echo("error: no photos found in the inputs", err=True)
    elif no_mask:
        click.echo("error: no usable face in any photo: no mask could be learned", err=True)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    elif not quiet and summary.files:
        click.echo(line, err=True)
    if summary.failed or no_mask:
        sys.exit(1)


def counts(summary: Any) -> str:
    """How many files ended in each status, e.g. ``3 protected, 1 failed`` (or ``no photos``)."""
    tally: dict[str, int] = {}
    for result in summary.files:
        tally[result.status] = tally.get(result.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in tally.items()) or "no photos"


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn the pipeline's usage errors into exit code 2 and its fatal errors (a mask that cannot
    be saved, a model that cannot be fetched, an output folder in use) into one line, exit 1."""
    from cloak.fileio import FolderBusy
    from cloak.mask import MaskError
    from cloak.photos import UsageError

    try:
        yield
    except UsageError as err:
        raise click.UsageError(str(err)) from None
    except (MaskError, zoo.FetchError, FolderBusy) as err:
        raise click.ClickException(str(err)) from None


def frame_progress(quiet: bool) -> Callable[[str, int, int], None]:
    """A progress callback drawing one tqdm bar of frames per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def show(stage: str, done: int, total: int) -> None:
        if quiet or total <= 0:
            return
        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=stage, unit="frame", file=sys.stderr,
                               dynamic_ncols=True)
        bars[stage].update(done - bars[stage].n)
        if done >= total:
            bars.pop(stage).close()

    return show

"""``cloak check``: would face recognizers still match protected photos to the person?"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cloak.cli.options import device_option
from cloak.cli.reporting import CliReporter, clean_errors

__all__ = ["check"]

_PATH = click.Path(exists=True, path_type=Path)


@click.command()
@click.argument("protected", nargs=-1, required=True, type=_PATH)
@click.option("--reference", "references", multiple=True, required=True, type=_PATH,
              metavar="CLEAN",
              help="Clean photos of the person (a photo or a folder; repeat for more). Of "
                   "several people in them, the person is the one seen in the most photos.")
@click.option("--mask", "mask_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The mask file the photos were protected with (default: the single *.cloak "
                   "file beside or above the protected photos, as cloak protect writes it).")
@click.option("--distractors", multiple=True, type=_PATH, metavar="FOLDER",
              help="Photos of other people for the top-1 rule (repeatable); features are kept "
                   "in memory only.")
@click.option("--rule", type=click.Choice(["far", "top1", "both"]), default="both",
              show_default=True,
              help="far: matched when a reference is more similar than the recognizer's "
                   "threshold at 1 false accept in 1,000. top1: matched when the nearest face "
                   "among references and distractors is a reference (needs --distractors, "
                   "else far is used). both: protected only when both rules say so.")
@click.option("--all-recognizers", is_flag=True,
              help="Also use the recognizers that made the mask (their verdicts are "
                   "optimistic).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE|-",
              help="Write everything as JSON to FILE, or to stdout with '-' (the table then "
                   "goes to stderr).")
@click.option("--report", "report_out", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.html",
              help="Also write a self-contained HTML report: each protected photo (beside its "
                   "original and the difference when a reference has the same file name) with "
                   "its verdicts, and a plot of the photos protected per recognizer.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for torch (default: torch's choice).")
@device_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
def check(protected: tuple[Path, ...], references: tuple[Path, ...], mask_file: Path | None,
          distractors: tuple[Path, ...], rule: str, all_recognizers: bool, json_out: str | None,
          report_out: Path | None, threads: int | None, device: str, quiet: bool) -> None:
    """Would face recognizers still match PROTECTED photos (files or folders) to the person?

    Each recognizer of the model zoo that did not make the mask compares each protected
    photo with the person's clean --reference photos (a photo is matched when any of its faces
    is), and with the person's other protected photos (can the protected photos be linked to
    each other?). Thresholds were calibrated on 3.6 million pairs of different LFW people.

    Limits: these recognizers are not the attacker's. Passing here is evidence, not a
    guarantee: a newer or adversarially trained recognizer may still find the person. The mask
    is never judged by the models that made it unless --all-recognizers asks; with the mask
    unknown, every recognizer is used.

    Prints one row per photo (per recognizer: protected or MATCHED vs the references, unlinked
    or LINKED vs the other protected photos), the share of photos protected per recognizer and
    a verdict. Unreadable photos and photos without a face get one error line each and the
    check goes on. Exit code: 0 every photo protected under --rule, 1 some photo matched or
    some input failed, 2 usage error.
    """
    from cloak.check import check_photos
    from cloak.check.table import format_table

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if mask_file is None:
        from cloak.check import find_mask

        with clean_errors():
            mask_file = find_mask(protected)
    with clean_errors():
        result = check_photos(protected, references, mask_file, distractors, rule,
                              all_recognizers=all_recognizers, reporter=CliReporter(quiet),
                              device=device)
    text = json.dumps(result.to_json(), indent=2, ensure_ascii=False)
    if json_out == "-":
        click.echo(text)
    elif json_out is not None:
        from cloak.fileio import write_bytes_atomic

        try:
            write_bytes_atomic(Path(json_out), (text + "\n").encode("utf-8"))
        except OSError as err:
            raise click.ClickException(f"{json_out}: cannot write: {err.strerror or err}") from None
    if report_out is not None:
        from cloak.report import check_report

        try:
            check_report(result, references, report_out)
        except OSError as err:
            raise click.ClickException(f"{report_out}: cannot write: {err.strerror or err}") \
                from None
    if not result.photos:
        click.echo("error: no protected photo could be checked", err=True)
    if not quiet or not result.passed:
        click.echo(format_table(result), err=json_out == "-")
    if not result.passed:
        sys.exit(1)

"""``cloak protect``: write protected copies of a person's photos."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from cloak.cli.engine import engine_options
from cloak.cli.options import LEARN_OPTIONS, learn_options, learn_settings
from cloak.cli.reporting import CliReporter, clean_errors, counts, finish

if TYPE_CHECKING:
    from cloak.photos import Summary

__all__ = ["protect"]


@click.command()
@click.argument("photos", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: <input>_cloaked beside the input folder, or "
                   "<name>_cloaked beside a single photo). Sub-folders are mirrored.")
@click.option("--name", help="The person's name, used for the mask file <output>/<name>.cloak "
                             "(default: the input folder's name).")
@click.option("--mask", "mask_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Apply this mask (from enroll or an earlier run) instead of learning one.")
@learn_options
@click.option("--refine", type=click.IntRange(0, 1000), default=0, show_default=True,
              metavar="STEPS",
              help="Refine the mask for each face by STEPS more steps (10 is a good choice): "
                   "each face is pushed away from the center of the person's faces in the "
                   "run, in batches of about 8 faces whose protected faces are pushed apart "
                   "from each other and from earlier batches, so that they stop matching each "
                   "other; each step averages the models' gradients over 3 random views of "
                   "the faces, each darker than the last (scale invariance), taken ahead "
                   "along the momentum (Nesterov): much stronger "
                   "protection at about 4 seconds per face on a 2-core CPU (README, "
                   "docs/BENCHMARKS.md). The saved mask stays the universal one.")
@click.option("--all-faces", is_flag=True,
              help="Protect every face found, not only the person's.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="Quality of JPEG outputs (lower washes the cloak out).")
@click.option("--keep-location", is_flag=True,
              help="Keep GPS location EXIF in the outputs (removed by default).")
@engine_options("local: photos one after the other in this process. dask: the finding of "
                "faces and the writing of the photos spread over a dask.distributed cluster "
                "(pip install 'cloak[distributed]'), the mask learned once in this process; "
                "the same outputs.")
@click.option("--force", is_flag=True,
              help="Redo everything: learn the mask again and rewrite finished outputs.")
@click.option("--report", is_flag=True,
              help="After the run, write <output>/report.html: each protected photo beside its "
                   "original, the difference amplified, SSIM and PSNR, the face boxes, the "
                   "recognizer verdicts (cloak check, rule far, with the originals themselves "
                   "as references) and the photos not written with their reasons. One "
                   "self-contained file that opens offline (pictures embedded, at most 512 px a "
                   "side).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary on stdout (per file: status, faces, output, seconds).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
@click.pass_context
def protect(ctx: click.Context, photos: tuple[Path, ...], output: Path | None, name: str | None,
            mask_file: Path | None, mode: str, eps: float | None, steps: int | None, seed: int,
            surrogates: tuple[str, ...] | None, protect_attributes: tuple[str, ...],
            terms: tuple[str, ...] | None, precision: str, photos_per_step: int | None,
            threads: int | None, device: str,
            refine: int,
            all_faces: bool, jpeg_quality: int, keep_location: bool, engine: str, workers: int,
            scheduler: str | None, force: bool, report: bool, as_json: bool,
            quiet: bool) -> None:
    """Write protected copies of a person's PHOTOS (files or folders).

    Finds the faces, decides whose photos these are (the person seen in the most photos;
    other people's faces stay untouched unless --all-faces, and photos without the person are
    not written), learns the person's mask from up to 10 of their photos (or applies --mask),
    then writes each photo with the mask on the person's face: same format, size and mode,
    location EXIF removed. Originals are never modified.

    The mask is saved as <output>/<name>.cloak as soon as it is learned; a rerun reuses it and
    skips photos already written with it (--force redoes them). Keep the mask file private:
    whoever holds it can try to subtract it from your photos. With --report the run ends by
    writing <output>/report.html over every copy present (written now or earlier).

    Each photo that fails (unreadable, no face, face too small, not a regular file, cannot be
    written) is named on one error line and the batch goes on. A second run on an output folder
    that a run is writing to is refused. Exit code: 0 all done, 1 some photos failed (or the
    output folder is in use), 2 usage error.

    With --engine dask the photos are scanned and written on a Dask cluster (the mask is
    learned once, here); the outputs and the progress file are the same as with the local run
    at the same --threads.
    """
    from cloak.cluster import EngineError
    from cloak.mask import MaskError, load_mask
    from cloak.photos import ProtectOptions
    from cloak.photos import protect as run_protect

    mask = None
    if mask_file is not None:
        given = [f"--{o.replace('_', '-')}" for o in LEARN_OPTIONS
                 if ctx.get_parameter_source(o) is ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be combined with --mask (the "
                                   "mask is already learned)")
        try:
            mask = load_mask(mask_file)
        except MaskError as err:
            raise click.BadParameter(str(err), param_hint="--mask") from None
    options = ProtectOptions(output=output, name=name, mask=mask, mask_path=mask_file,
                             learn=learn_settings(mode, eps, steps, seed, surrogates, threads,
                                                  protect_attributes, terms, device,
                                                  precision, photos_per_step),
                             all_faces=all_faces, jpeg_quality=jpeg_quality,
                             keep_location=keep_location, force=force, refine=refine,
                             engine=engine, workers=workers, scheduler=scheduler)
    with clean_errors():
        try:
            summary = run_protect(photos, options, CliReporter(quiet))
        except EngineError as err:
            raise click.UsageError(str(err)) from None
    report_failed = report and not _write_report(summary, quiet)
    finish(summary, as_json, quiet,
           f"{summary.person}: {counts(summary)}; outputs in {summary.output}; mask "
           f"{summary.mask_path or 'none'} ({summary.mask_source or 'none'})")
    if report_failed:
        sys.exit(1)


def _write_report(summary: Summary, quiet: bool) -> bool:
    """Write the run's report (:func:`cloak.report.protect_report`); False when it cannot be
    written (one error line)."""
    from cloak.report import protect_report

    try:
        path = protect_report(summary, CliReporter(quiet))
    except OSError as err:
        click.echo(f"error: {summary.output}: cannot write the report ({err})", err=True)
        return False
    if not quiet:
        click.echo(f"note: report written to {path}", err=True)
    return True

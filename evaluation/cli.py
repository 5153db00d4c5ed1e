"""``cloak benchmark``: the evaluation commands, a plugin of the ``cloak`` CLI.

Registered under the ``cloak.commands`` entry point group in pyproject.toml, so the product
(``cloak``) never imports its own benchmark.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource


@click.command()
@click.option("--robustness", is_flag=True,
              help="Measure robustness instead: PSR after JPEG, resizing, blur, re-alignment "
                   "jitter and purifiers; other matching directions; verification at FAR "
                   "1e-2/1e-3; the mask-estimation attack; the per-photo baseline.")
@click.option("--eot", is_flag=True,
              help="Learn the masks with expectation over transformation (the robust option).")
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
              help="Conditions side by side. Identity (default: clean,noise,convex): clean, "
                   "noise (uniform at the same eps), the OPOM subspaces center, affine, convex "
                   "(the mode's mask as cloak protect ships it), refine (the convex mask "
                   "refined per probe, --refine-steps), and the objective ablations opom (no "
                   "optional term), opom+linkage, opom+views, opom+linkage+views. "
                   "--attributes: clean, mask-paper, mask-surgical, mask-cloth, cloak, "
                   "cloak+mask-STYLE.")
@click.option("--refine-steps", type=click.IntRange(min=1),
              help="Per-probe steps of the refine condition (default 10).")
@click.option("--loo", type=click.Choice(["one", "two", "full"]), default="two",
              show_default=True,
              help="Leave-one-out plan: one fold (2 recognizers tested), two folds (each of the "
                   "5 tested once), full (one fold per recognizer, 4 surrogates each).")
@click.option("--mode", type=click.Choice(["fast", "balanced", "strong"]),
              help="Optimiser preset (its surrogates are replaced by each fold's). Default: "
                   "balanced, what cloak protect ships; fast with --robustness and "
                   "--attributes.")
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
                   "opom, robustness or attributes).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def benchmark(robustness: bool, eot: bool, attributes: bool, utkface: Path | None,
              faces: int | None, lfw: Path | None,
              limit: int | None, people: tuple[str, ...], distractors: int | None,
              conditions: str | None, refine_steps: int | None,
              loo: str, mode: str | None, steps: int | None, eps: float | None, seed: int,
              threads: int | None, cache: Path | None, out: Path, markdown: Path | None,
              section: str | None, quiet: bool) -> None:
    """Measure protection on the OPOM protocol (LFW): PSR against black-box recognizers.

    Per identity, 10 photos learn a mask and 5 other photos are protected, re-detected and
    searched by each recognizer in a gallery of the person's other clean photos and 2,679
    distractors. PSR@k = share of protected probes whose identity is NOT in the top k. A
    recognizer is never tested on masks it helped to make (leave-one-out). Prints the
    markdown table; writes JSON with per-identity ranks, quality (PSNR, SSIM, L-inf) and times.

    With --robustness: the same people and folds, each protected (and clean) probe also
    re-encoded, resized, blurred, re-aligned with jitter or filtered by a purifier; clean probes
    against protected galleries and protected against protected; verification at fixed false
    accept rates; an attacker who estimates the mask from k protected photos and subtracts it;
    and one optimisation per photo (the Fawkes / LowKey way) timed beside the universal mask.

    With --attributes: how well sex, age and race are still predicted (three black-box
    attribute predictors) on clean faces, faces wearing a synthetic physical mask (paper,
    surgical, cloth), cloaked faces and both, on UTKFace (--faces per folder; each cloak learned
    from its single photo) and LFW (--limit identities; flips against clean predictions).
    Finished identities and faces are stored in the cache, so a rerun resumes.
    """
    from dataclasses import replace

    import torch
    from tqdm import tqdm

    if robustness and attributes:
        raise click.UsageError("choose one of --robustness and --attributes")
    if threads is not None:
        torch.set_num_threads(threads)

    def say(line: str) -> None:
        tqdm.write(line, file=sys.stderr)

    paths = {k: v for k, v in (("lfw", lfw), ("cache_dir", cache), ("utkface", utkface))
             if v is not None}
    mode = mode or ("fast" if robustness or attributes else "balanced")
    try:
        if attributes:
            from evaluation import attribute_benchmark as bench

            settings = bench.AttributeSettings(
                limit=faces, lfw_limit=limit, lfw_distractors=distractors, mode=mode,
                steps=steps, seed=seed, progress=not quiet,
                conditions=_conditions(conditions, bench.ALL_CONDITIONS, bench.CONDITIONS))
            result = bench.run_attribute_benchmark(replace(settings, **paths), log_line=say)
        else:
            from evaluation import opom_benchmark as bench

            paths.pop("utkface", None)
            opom = replace(bench.BenchmarkSettings(
                limit=limit, people=people or None, distractors=distractors, loo=loo,
                mode=mode, steps=steps, eps=eps, eot=eot or None,
                seed=seed, progress=not quiet,
                refine_steps=refine_steps or bench.DEFAULT_REFINE_STEPS,
                conditions=_conditions(conditions, bench.CONDITIONS, bench.DEFAULT_CONDITIONS)),
                **paths)
            if robustness:
                from evaluation import robustness as bench

                result = bench.run_robustness(bench.RobustnessSettings(opom), log_line=say)
            else:
                result = bench.run_benchmark(opom, log_line=say)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    ctx = click.get_current_context()
    given = [f"--{name.replace('_', '-')} {value}" for name, value in ctx.params.items()
             if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
    command = " ".join(["cloak benchmark", *given]).replace(" True", "")
    section = section or ("attributes" if attributes else
                          "robustness" if robustness else "opom")
    click.echo(bench.write_report(result, out, markdown, command, section))


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

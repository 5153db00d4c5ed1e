"""The options ``cloak protect`` and ``cloak enroll`` share: how a mask is learned, and the
``--device`` of every command that runs models.

Option values are parsed and checked here (exit code 2 on a bad value); heavy modules are
imported only when an option is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from attackers import zoo

__all__ = ["LEARN_OPTIONS", "MODE_HELP", "PRECISION_CHOICES", "device_option", "learn_options",
           "learn_settings"]

#: --mode presets as documented in --help; tests check them against cloak.opom.MODES.
MODE_HELP = (
    "Preset of the mask optimiser. fast: surrogates facenet, dlib-resnet; 20 steps "
    "(about 15 s for 10 photos). balanced: facenet, dlib-resnet, faceres, mobilefacenet; "
    "40 steps on 5 of the photos each (about 25 s). strong: facenet, dlib-resnet, faceres, "
    "mobilefacenet, sface; 100 steps (about 6 min). All: eps 8/255, steps of 2/255, "
    "convex-hull subspace, momentum, input diversity, translation invariance, the photo paste "
    "path, and the optional terms linkage and views (see --terms). Times on a 2-core CPU.")
#: --precision's choices, written here so --help needs no torch; tests check them against
#: cloak.opom.PRECISIONS.
PRECISION_CHOICES = ("float32", "bfloat16")
#: The parameters of :func:`learn_options` that say how a mask is learned (not --threads).
LEARN_OPTIONS = ("mode", "eps", "steps", "seed", "surrogates", "protect_attributes", "terms",
                 "precision", "photos_per_step")


def _parse_surrogates(_ctx: click.Context, _param: click.Parameter,
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


def _parse_attributes(_ctx: click.Context, _param: click.Parameter,
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


def _parse_terms(_ctx: click.Context, _param: click.Parameter,
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


def _parse_device(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Parse ``--device auto|cpu|cuda|mps`` into the torch device name it means here."""
    from cloak.device import DeviceError, resolve_device

    try:
        return str(resolve_device(value))
    except DeviceError as err:
        raise click.BadParameter(str(err)) from None


#: ``--device``: the torch device of the run's models, optimiser and paste.
device_option = click.option(
    "--device", default="auto", show_default=True, callback=_parse_device,
    metavar="auto|cpu|cuda|mps",
    help="Where the torch models (MTCNN, the recognizers, the surrogates), the optimiser and "
         "the paste run: auto = CUDA if torch sees a GPU, else the CPU; cuda:N picks a GPU. "
         "Black boxes (onnxruntime, dlib) stay on the CPU. A mask learned on any device is "
         "the same mask (its values agree within noise).")


def learn_options(command: Callable[..., Any]) -> Callable[..., Any]:
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
        click.option("--surrogates", callback=_parse_surrogates, metavar="A,B,...",
                     help="Comma-separated white-box recognizers to learn on (default: the "
                          "mode's)."),
        click.option("--protect-attributes", "protect_attributes", callback=_parse_attributes,
                     metavar="sex,age,race",
                     help="Also hide these attributes: the mask pushes white-box sex/age/race "
                          "predictors (age-gender, faceres-attributes, gear) towards "
                          "uninformative outputs, at some cost to identity protection. "
                          "Learning takes about 2.5x as long in fast mode, 1.8x in balanced."),
        click.option("--terms", callback=_parse_terms, metavar="A,B|none",
                     help="Optional terms of the mask's objective besides OPOM's push away "
                          "from your clean features: linkage (push your protected photos "
                          "apart from each other, so they do not match one another), views "
                          "(learn on random mirrored, re-aligned, re-lit views of your photos, "
                          "so the mask carries to new photos). Default: the mode's; 'none' = "
                          "OPOM's objective alone (masks of cloak 0.x before these terms)."),
        click.option("--precision", type=click.Choice(PRECISION_CHOICES),
                     default="float32", show_default=True,
                     help="Number format of the surrogates while the mask is learned. "
                          "bfloat16 learned 1.2x faster on a 2-core CPU with AVX-512 BF16 and "
                          "gives a mask that protects the same within the "
                          "benchmark's noise; it is recorded in the mask file."),
        click.option("--photos-per-step", "photos_per_step", type=click.IntRange(min=0),
                     help="Training photos each optimisation step learns from, in turn "
                          "(default: the mode's; balanced: 5, half the cost of all 10 and the "
                          "same protection within the benchmark's noise); 0 = all of them "
                          "every step. It is recorded in the mask file."),
        click.option("--threads", type=click.IntRange(min=1),
                     help="CPU threads for torch (default: torch's choice). On a busy machine "
                          "1 can be several times faster. Masks are reproducible for the same "
                          "seed and thread count."),
        device_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def learn_settings(mode: str, eps: float | None, steps: int | None, seed: int,
                   surrogates: tuple[str, ...] | None, threads: int | None,
                   protect_attributes: tuple[str, ...] = (),
                   terms: tuple[str, ...] | None = None, device: str = "cpu",
                   precision: str = "float32", photos_per_step: int | None = None) -> Any:
    """The pipeline's LearnSettings; sets torch's thread count when asked."""
    import torch

    from cloak.masking import LearnSettings

    if threads is not None:
        torch.set_num_threads(threads)
    return LearnSettings(mode=mode, eps=eps, steps=steps, seed=seed, surrogates=surrogates,
                         protect_attributes=protect_attributes, terms=terms, device=device,
                         precision=precision, per_step=photos_per_step)

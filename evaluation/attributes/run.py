"""The run: every UTKFace folder and the LFW part of :class:`AttributeSettings`, from the
record store where finished, with their summaries."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from evaluation.attributes.lfw import run_lfw
from evaluation.attributes.models import load_lfw_models, load_models
from evaluation.attributes.records import record_store
from evaluation.attributes.settings import PREDICTORS, AttributeSettings
from evaluation.attributes.summary import summarise_lfw, summarise_utkface
from evaluation.attributes.utkface import run_utkface

__all__ = ["run_attribute_benchmark"]

log = logging.getLogger(__name__)


def run_attribute_benchmark(settings: AttributeSettings,
                            log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the attribute-leakage benchmark; return the results (JSON-ready; no pixels, crops or
    features inside).

    Args:
        settings: what to run (:class:`AttributeSettings`).
        log_line: called with one line per finished chunk of faces or identity (e.g.
            ``tqdm.write``); default: the module logger at INFO.

    Returns:
        a dict with ``settings``, ``config`` (the cloak's optimiser settings and surrogates),
        ``utkface`` (per dataset: ``files``, ``malformed`` names, per-face ``faces`` records and
        a ``summary`` with counts, timings and metrics per condition and predictor), ``lfw``
        (``identities`` records, ``skipped`` and a ``summary`` with flip rates; absent when
        ``lfw_limit`` is 0), ``wall_s`` and the machine.

    Raises:
        ValueError: invalid settings; FileNotFoundError: data folders missing.
    """
    settings.check()
    say = log_line or log.info
    started = time.perf_counter()
    models = load_models(settings)
    folds = settings.attribute_folds()
    runs = record_store(settings)
    result: dict[str, Any] = {
        "benchmark": "attributes: sex, age and race leakage under physical masks and cloaks",
        "settings": {k: (str(v) if isinstance(v, Path) else v)
                     for k, v in asdict(settings).items()},
        "config": {**settings.config().as_record(), "surrogates": list(settings.surrogates()),
                   **({"attribute_folds": folds} if folds else {})},
        "predictors": {n: {"zoo": PREDICTORS[n][0],
                           "runtime": "reference" if PREDICTORS[n][1] else "zoo loader"}
                       for n in settings.predictors},
        "utkface": {}}
    for dataset in settings.datasets:
        run = run_utkface(dataset, settings, models, runs, say)
        run["summary"] = summarise_utkface(run, settings)
        result["utkface"][dataset] = run
    stores = [runs]
    if settings.lfw_limit != 0:
        distractors = load_lfw_models(settings, models)
        stores.append(record_store(settings, distractors))
        run = run_lfw(settings, models, stores[-1], say)
        run["summary"] = summarise_lfw(run, settings)
        result["lfw"] = run
    for store in stores:
        if store.reused:
            say(f"resumed {store.reused} finished records from {store.folder}")
    result.update(cache={"folder": str(runs.folder), "lfw_folder": str(stores[-1].folder),
                         "reused": sum(s.reused for s in stores),
                         "written": sum(s.written for s in stores)},
                  wall_s=time.perf_counter() - started,
                  cpu=platform.processor() or platform.machine(),
                  torch_threads=torch.get_num_threads())
    return result

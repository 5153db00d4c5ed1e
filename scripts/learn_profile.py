"""Where :func:`cloak.opom.learn_mask` spends its time, per stage, on real LFW photos.

Finds one training face per photo (as ``cloak enroll`` does), loads the mode's surrogates once,
learns one warm-up mask on one face (allocator and kernel start-up), then times ``learn_mask``
on all the faces with each stage's exclusive wall time (a stage's time excludes the stages
nested in it):

- ``views``: random views of the training photos (:class:`cloak.views.RandomViews`);
- ``paste``: the protected frames, forward (:func:`cloak.opom.protected_frames`);
- ``DI``: input diversity, forward (:class:`cloak.steps.InputDiversity`);
- ``forward <name>``: each surrogate's forward (``embed``, its crop included);
- ``objective``: the subspace, anti-linkage and anchor terms
  (:func:`cloak.objective.feature_gradient`);
- ``backward (surrogates)``: each surrogate's backward through its crop and DI to the frames;
- ``backward (paste)``: the frames' gradient back through the paste path to the mask;
- ``TI + MI + sign step``: :func:`cloak.steps.translation_invariance`, momentum, :func:`fim_step`;
- ``other``: the rest (clean features, gradient balancing, bookkeeping).

Writes JSON and the markdown section "learn-profile" of docs/BENCHMARKS.md.

    python scripts/learn_profile.py --person Colin_Powell --photos 10 --steps 4
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import attackers
import cloak.opom.learn as learn_module
from cloak.imageio import read_photo
from cloak.masking import LearnSettings, MaskLearner, mask_digest
from cloak.photos.options import Reporter
from cloak.photos.paste import photo_training_face
from cloak.photos.scan import Models, find_faces
from evaluation.report import markdown_table, publish

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw" / "identities"


class Stopwatch:
    """Exclusive wall time per stage: time inside a nested stage counts only for that stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:
            outer = self._stack[-1]
            self.seconds[outer[0]] += now - outer[1]
        self._stack.append([name, now])
        try:
            yield
        finally:
            name, since = self._stack.pop()
            now = time.perf_counter()
            self.seconds[name] += now - since
            if self._stack:
                self._stack[-1][1] = now

    def wrap(self, function: Callable[..., Any],
             name: str | Callable[..., str]) -> Callable[..., Any]:
        """``function`` timed as stage ``name`` (or ``name(*args)``)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name if isinstance(name, str) else name(*args, **kwargs)):
                return function(*args, **kwargs)

        return timed


def training_faces(person: str, count: int) -> list[Any]:
    """One training face per photo (its most confident face), as ``cloak enroll`` finds it."""
    models, faces = Models(Reporter()), []
    for path in sorted((LFW / person).glob("*.jpg"))[:count]:
        photo = read_photo(path)
        found, _ = find_faces(photo, models, 20)
        faces.append(photo_training_face(photo, found[0].matrix))
    return faces


def instrument(watch: Stopwatch, learner: MaskLearner) -> None:
    """Route the optimiser's stages through ``watch`` (this process only)."""
    for surrogate in learner.surrogates:
        surrogate.embed = watch.wrap(surrogate.embed, f"forward {surrogate.name}")
    for name, label in (("protected_frames", "paste"), ("feature_gradient", "objective"),
                        ("translation_invariance", "TI + MI + sign step"),
                        ("fim_step", "TI + MI + sign step")):
        setattr(learn_module, name, watch.wrap(getattr(learn_module, name), label))
    for cls, label in ((learn_module.RandomViews, "views"),
                       (learn_module.InputDiversity, "DI"),
                       (learn_module.Momentum, "TI + MI + sign step")):
        method = "forward" if label == "DI" else "__call__"
        setattr(cls, method, watch.wrap(getattr(cls, method), label))
    torch.autograd.grad = watch.wrap(  # type: ignore[assignment]
        torch.autograd.grad,
        lambda outputs, inputs, **_: "backward (paste)" if torch.is_tensor(inputs)
        and inputs.ndim == 3 else "backward (surrogates)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--person", default="Colin_Powell")
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--mode", default="balanced")
    parser.add_argument("--steps", type=int, default=None, help="default: the mode's")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "results" / "learn_profile.json")
    args = parser.parse_args()

    faces = training_faces(args.person, args.photos)
    learner = MaskLearner(LearnSettings(mode=args.mode, steps=args.steps), attackers.load)
    learner("warm-up", faces[:1])
    watch = Stopwatch()
    instrument(watch, learner)
    start = time.perf_counter()
    with watch.stage("other"):
        mask = learner(args.person, faces)
    wall = time.perf_counter() - start
    stages = dict(sorted(watch.seconds.items(), key=lambda kv: -kv[1]))
    command = " ".join(["python scripts/learn_profile.py", *sys.argv[1:]])
    result = {
        "person": args.person, "photos": len(faces), "mode": args.mode,
        "steps": learner.config.steps, "surrogates": list(learner.names),
        "threads": torch.get_num_threads(), "learn_mask_s": wall, "stages_s": stages,
        "mask_digest": mask_digest(mask)}
    rows = [[name, seconds, f"{100 * seconds / wall:.1f}%"] for name, seconds in stages.items()]
    table = markdown_table(["stage", "seconds", "share"], rows)
    body = (f"`{command}`: `learn_mask` on {len(faces)} photos of {args.person}, mode "
            f"{args.mode} ({', '.join(learner.names)}; {learner.config.steps} steps), "
            f"{torch.get_num_threads()} threads: {wall:.2f} s wall, mask digest "
            f"`{result['mask_digest'][:16]}`. Exclusive wall time per stage:\n\n{table}\n")
    print(publish(result, body, args.out, args.markdown, command, "learn-profile"))


if __name__ == "__main__":
    main()

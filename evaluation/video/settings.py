"""What the video benchmark runs: :class:`VideoBenchmarkSettings` and frame sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW
from evaluation.protocol.folds import BLACK_BOXES, FOLD_PLANS, Fold, check_folds, model_of

__all__ = ["SIZES", "VideoBenchmarkSettings", "parse_size"]

#: Frame sizes by name (width, height).
SIZES = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


def parse_size(text: str) -> tuple[int, int]:
    """``"720p"`` or ``"WxH"`` (even numbers) -> (width, height).

    >>> parse_size("720p"), parse_size("320x240")
    ((1280, 720), (320, 240))
    """
    if text in SIZES:
        return SIZES[text]
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit()):
        raise ValueError(f"size must be one of {', '.join(SIZES)} or WxH, got {text!r}")
    size = int(width), int(height)
    if size[0] % 2 or size[1] % 2 or min(size) < 64:
        raise ValueError(f"size must be even and at least 64 pixels, got {text!r}")
    return size


@dataclass(frozen=True)
class VideoBenchmarkSettings:
    """What :func:`evaluation.video.run.run_video_benchmark` runs.

    Attributes:
        lfw: the ``lfw`` folder (``identities/``, ``distractors/``).
        people: enrolled identities, the first ones by name with 15 usable photos; pairs
            make clips (an odd last one is left out).
        names: these identities instead (folder names), paired in order.
        seconds: length of each clip.
        size: frame size (:func:`parse_size`).
        fps: frames per second.
        loo: ``"fast"`` (the fast preset's surrogates; sface, mobilefacenet, faceres tested) or a
            key of :data:`~evaluation.protocol.folds.FOLD_PLANS`.
        tested: only these of the folds' tested recognizers (None: all).
        mode: optimiser preset of :data:`cloak.opom.MODES` (surrogates from the fold).
        steps: override of the preset's steps.
        distractors: only the first N distractor photos in the gallery (None: all 2,679).
        eval_every: evaluate protection on every N-th frame.
        threads: threads per video (:class:`~cloak.video.protect.VideoOptions`; 0 = all cores).
        seed: seeds the clips and the masks.
        cache_dir: distractor features and learned masks.
        progress: show progress bars.
    """

    lfw: Path = DEFAULT_LFW
    people: int = 2
    names: tuple[str, ...] | None = None
    seconds: float = 4.0
    size: str = "720p"
    fps: int = 25
    loo: str = "fast"
    tested: tuple[str, ...] | None = None
    mode: str = "fast"
    steps: int | None = None
    distractors: int | None = None
    eval_every: int = 5
    threads: int = 0
    seed: int = 0
    cache_dir: Path = DEFAULT_CACHE
    progress: bool = True

    def folds(self) -> tuple[Fold, ...]:
        """The leave-one-out folds, with ``tested`` applied."""
        from cloak.masking import get_mode

        if self.loo == "fast":
            surrogates = get_mode("fast").surrogates
            used = {model_of(s) for s in surrogates}
            folds: tuple[Fold, ...] = (Fold("fast", tuple(surrogates), tuple(
                t for t in BLACK_BOXES if model_of(t) not in used)),)
        elif self.loo in FOLD_PLANS:
            folds = FOLD_PLANS[self.loo]
        else:
            raise ValueError(f"unknown leave-one-out plan {self.loo!r}; choose fast or one of "
                             f"{', '.join(FOLD_PLANS)}")
        if self.tested is not None:
            folds = tuple(Fold(f.name, f.surrogates, tuple(t for t in f.tested
                                                           if t in self.tested)) for f in folds)
            folds = tuple(f for f in folds if f.tested)
            if not folds:
                raise ValueError(f"none of {self.tested} is tested in plan {self.loo!r}")
        check_folds(folds)
        return folds

    def check(self) -> None:
        """Raise ValueError naming an invalid setting."""
        parse_size(self.size)
        if self.people < 2 and not self.names:
            raise ValueError(f"people must be at least 2 (clips show pairs), got {self.people}")
        if self.names is not None and len(self.names) < 2:
            raise ValueError("names must hold at least 2 identities")
        if self.seconds * self.fps < 2:
            raise ValueError(f"a clip needs at least 2 frames, got {self.seconds} s at "
                             f"{self.fps} fps")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be at least 1, got {self.eval_every}")
        self.folds()

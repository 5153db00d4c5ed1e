"""The video benchmark: speed, mask placement and protection of ``cloak video`` on real faces.

Clips (:mod:`evaluation.video_clips`): for each pair of LFW identities (sorted, the first
``people``), a clip of ``seconds`` at ``fps`` and ``size`` in which the two cross each other and a
stranger (a distractor photo) drifts in a corner, H.264 at CRF 18 with an AAC tone. Every frame is
a real photo resampled, so the ground truth (who is where, each frame) is known.

Per identity, the OPOM split (:func:`~evaluation.protocol.split_photos`): the first 10 photos with
a face learn the mask (photo enrolment, :data:`cloak.opom.MODES` preset, default ``fast``) and are
the reference photos that name the person's track; the next 5 are probes, and the clip shows
probe 0, so nothing in the clip was learned from. Leave-one-out: a recognizer is never tested on
a mask it helped make; the default fold ``fast`` learns with the fast preset's surrogates
(facenet, dlib-resnet) and tests sface, mobilefacenet and faceres; ``--loo`` takes the OPOM
benchmark's plans instead (:data:`~evaluation.opom_benchmark.FOLD_PLANS`).

Measured, per clip and fold (:func:`cloak.video.protect.protect_video`, the shipped path):

- speed: frames per second of the whole run (decode, detect, track, paste, encode), its ratio to
  real time, and CPU milliseconds per frame;
- placement (:func:`mask_assignment`): per frame and enrolled person in view, whether a mask of
  that person lies on their face (landmarks within a quarter of the face width of the truth);
  frames with a mask on anyone else (the other person, the stranger, or nobody) are counted
  apart and must be 0;
- protection: every ``eval_every``-th frame of the written file is decoded; around each enrolled
  person's true face the attacker runs MTCNN (on a crop of three face widths: a detector that
  finds the face, as a real attacker's would), aligns and embeds the face with each tested
  black-box recognizer and searches the OPOM gallery: the person's other clean probes (1-4) +
  all distractors (:func:`~evaluation.opom_benchmark.distractor_features`). Per-frame PSR@1 =
  share of face-frames whose identity is not the top match (no face found counts as protected,
  as in the photo benchmark). Per-track PSR@1: the attacker averages the features of a track's
  evaluated frames into one query (the strongest simple attack on a video). The same for the
  unprotected clip (clean), and the photo PSR@1 of the same people with the same masks on their
  5 probe photos (:func:`cloak.opom.protect_photo`, rounded to 8 bits, re-detected).

Masks are cached as ``.cloak`` files under ``cache_dir/video-masks/<settings digest>/`` (no
features are written), so a rerun with the same settings only re-measures.

>>> # result = run_video_benchmark(VideoBenchmarkSettings(people=2, seconds=2))
>>> # write_report(result, Path("video.json"), Path("docs/BENCHMARKS.md"), "...", "video")
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evaluation.lfw import central_faces, identity_folders, load_rgb
from evaluation.opom_benchmark import (
    BLACK_BOXES,
    FOLD_PLANS,
    Fold,
    _embed,
    _Photo,
    check_folds,
    distractor_features,
    model_of,
)
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW
from evaluation.protocol import identity_ranks, psr, split_photos
from evaluation.report import key_digest, markdown_table, publish

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer
    from cloak.mask import Mask
    from cloak.video.tracks import FaceInFrame
    from evaluation.video_clips import SyntheticClip

__all__ = ["SIZES", "VideoBenchmarkSettings", "mask_assignment", "parse_size",
           "report_markdown", "run_video_benchmark", "write_report"]

#: Frame sizes by name (width, height).
SIZES = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
#: Landmarks of a masked face within this share of the true face width count as on that face.
PLACEMENT_TOLERANCE = 0.25


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
    """What :func:`run_video_benchmark` runs.

    Attributes:
        lfw: the ``lfw`` folder (``identities/``, ``distractors/``).
        people: enrolled identities, the first ones by name with 15 usable photos; pairs
            make clips (an odd last one is left out).
        names: these identities instead (folder names), paired in order.
        seconds: length of each clip.
        size: frame size (:func:`parse_size`).
        fps: frames per second.
        loo: ``"fast"`` (the fast preset's surrogates; sface, mobilefacenet, faceres tested) or a
            key of :data:`~evaluation.opom_benchmark.FOLD_PLANS`.
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
        from cloak.opom import MODES

        if self.loo == "fast":
            surrogates = MODES["fast"].surrogates
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


def mask_assignment(plan: Sequence[Sequence[FaceInFrame]], clip: SyntheticClip,
                    enrolled: set[str]) -> dict[str, Any]:
    """Where the masks of a protection plan land, against a clip's ground truth.

    A masked face (``person`` not None) is on actor ``a`` when its landmarks are, on average,
    within :data:`PLACEMENT_TOLERANCE` face widths of ``a``'s true landmarks (the nearest
    actor). It is right when ``a`` is that person.

    Args:
        plan: per frame, the faces the pipeline masks (display coordinates).
        clip: the clip's ground truth.
        enrolled: names of the enrolled people.

    Returns:
        ``right`` (face-frames of enrolled people in full view that carry their own mask),
        ``needed`` (face-frames of enrolled people in full view), ``right_share``,
        ``wrong_frames`` (frames with a mask on anyone but its person, or on no face),
        ``wrong_faces`` (such masks), ``landmark_error`` (mean distance in pixels between the
        landmarks the right masks were placed with and the true ones).
    """
    right = needed = wrong_frames = wrong_faces = 0
    errors: list[float] = []
    for frame, faces in enumerate(plan):
        hit: set[int] = set()
        wrong = 0
        for face in faces:
            if face.person is None:
                continue
            distance = (clip.landmarks[frame] - face.landmarks[None]).norm(dim=-1).mean(-1)
            actor = int(distance.argmin())
            width = float(clip.boxes[frame, actor, 2] - clip.boxes[frame, actor, 0])
            if distance[actor] <= PLACEMENT_TOLERANCE * width and (
                    clip.labels[actor] == face.person):
                hit.add(actor)
                errors.append(float(distance[actor]))
            else:
                wrong += 1
        for actor, label in enumerate(clip.labels):
            if label in enrolled and bool(clip.visible[frame, actor]):
                needed += 1
                right += actor in hit
        wrong_frames += wrong > 0
        wrong_faces += wrong
    return {"right": right, "needed": needed,
            "right_share": right / needed if needed else math.nan,
            "wrong_frames": wrong_frames, "wrong_faces": wrong_faces,
            "landmark_error": float(np.mean(errors)) if errors else math.nan}


# ----------------------------------------------------------------------------- people


@dataclass
class _Person:
    name: str
    train: list[_Photo]
    probes: list[_Photo]
    references: torch.Tensor    # (10, D) sface features of the training photos (memory only)


def _people(settings: VideoBenchmarkSettings, detector: MTCNN, sface: Recognizer,
            say: Callable[[str], None]) -> tuple[list[_Person], list[dict[str, str]]]:
    """The identities with 15 usable photos, in order, until enough (or the named ones)."""
    candidates = identity_folders(settings.lfw, settings.names)
    if settings.names is not None:                      # in the order the names were given
        by_name = {p.name: p for p in candidates}
        candidates = [by_name[n] for n in settings.names]
    wanted = len(candidates) if settings.names is not None else settings.people // 2 * 2
    chosen, skipped = [], []
    for person_dir in candidates:
        if len(chosen) == wanted:
            break
        paths = sorted(person_dir.glob("*.jpg"))[:20]
        images = [load_rgb(p) for p in paths]
        usable = [_Photo(p, img, face) for p, img, face in
                  zip(paths, images, central_faces(images, detector), strict=True)
                  if face is not None]
        split = split_photos(person_dir.name, usable, 10, 5)
        if split is None:
            skipped.append({"person": person_dir.name,
                            "reason": f"{len(usable)} of the first 20 photos have a face"})
            continue
        with torch.no_grad():
            refs = sface.embed(torch.stack([p.face.frame for p in split.train]))
        chosen.append(_Person(split.person, split.train, split.probes, refs))
        say(f"{split.person}: 10 training photos, 5 probes")
    if len(chosen) < 2:
        raise ValueError(f"{settings.lfw / 'identities'}: fewer than 2 identities with 15 "
                         "photos with a face")
    return chosen[:len(chosen) // 2 * 2], skipped


def _mask_cache(settings: VideoBenchmarkSettings, folds: Sequence[Fold]) -> Path:
    """Folder of cached masks: keyed by everything that changes a mask."""
    from dataclasses import replace

    from attackers import zoo
    from cloak.opom import MODES

    config = MODES[settings.mode].config
    if settings.steps is not None:
        config = replace(config, steps=settings.steps)
    key = {"config": asdict(replace(config, seed=settings.seed)),
           "folds": [asdict(f) for f in folds],
           "weights": {s: zoo.weights_digests(s) for f in folds for s in f.surrogates}}
    return settings.cache_dir / "video-masks" / key_digest(key)


def _learn_masks(person: _Person, settings: VideoBenchmarkSettings, folds: Sequence[Fold],
                 surrogates: dict[str, Recognizer], cache: Path) -> dict[str, Mask]:
    """Per fold, the person's mask: from the cache, or learned from their 10 training photos."""
    from dataclasses import replace

    from cloak.mask import Mask, MaskError, load_mask, save_mask
    from cloak.opom import MODES, learn_mask, training_face

    masks = {}
    config = replace(MODES[settings.mode].config, seed=settings.seed)
    if settings.steps is not None:
        config = replace(config, steps=settings.steps)
    for fold in folds:
        path = cache / f"{person.name}-{fold.name}.cloak"
        names = [p.path.name for p in person.train]
        if path.exists():
            try:
                mask = load_mask(path)
                if mask.settings.get("photos") == ",".join(names):
                    masks[fold.name] = mask
                    continue
            except MaskError:
                pass
        start = time.perf_counter()
        delta = learn_mask([training_face(p.pixels, p.face) for p in person.train],
                           [surrogates[s] for s in fold.surrogates], config)
        mask = Mask(delta.float().contiguous(), float(config.eps), config.subspace,
                    list(fold.surrogates), person.name, config.seed,
                    settings={"mode": settings.mode, "steps": config.steps,
                              "feather": config.feather, "photos": ",".join(names),
                              "learn_s": round(time.perf_counter() - start, 1)})
        path.parent.mkdir(parents=True, exist_ok=True)
        save_mask(mask, path)
        masks[fold.name] = mask
    return masks


# ----------------------------------------------------------------------------- attacker


def _attacker_faces(path: Path, clip: SyntheticClip, actors: Sequence[int], every: int,
                    detector: MTCNN) -> dict[int, list[torch.Tensor | None]]:
    """Per actor, per evaluated frame (every ``every``-th): the attacker's aligned face or None.

    The frames are decoded from the written file. The attacker crops three face widths around
    the true face, runs MTCNN and keeps the face whose box overlaps the true box most (IoU above
    0.3).
    """
    from cloak.faces import align_faces
    from cloak.video.detection import box_iou
    from cloak.video.reading import iter_frames

    found: dict[int, list[torch.Tensor | None]] = {a: [] for a in actors}
    for frame in iter_frames(path, select=lambda i: i % every == 0):
        if frame.index % every:
            continue
        index = frame.index
        height, width = frame.image.shape[:2]
        image = torch.from_numpy(frame.image).permute(2, 0, 1).float()
        for actor in actors:
            box = clip.boxes[index, actor]
            side = float(box[2] - box[0])
            cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
            x0, y0 = max(0, int(cx - 1.5 * side)), max(0, int(cy - 1.5 * side))
            x1, y1 = min(width, int(cx + 1.5 * side)), min(height, int(cy + 1.5 * side))
            crop = image[:, y0:y1, x0:x1].contiguous()
            with torch.no_grad():
                faces = align_faces([crop], detector)[0]
            shift = torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
            best, overlap = None, 0.3
            for face in faces:
                iou = float(box_iou((face.detection.box + shift)[None], box[None])[0, 0])
                if iou > overlap:
                    best, overlap = face.frame, iou
            found[actor].append(best)
    return found


def _rank(query: torch.Tensor, genuine: torch.Tensor, distractors: torch.Tensor) -> int:
    """Distractors more similar to ``query`` than its best genuine match (NaN query: all)."""
    if torch.isnan(query).any():
        return len(distractors)
    best = (genuine.double() @ query.double()).max()
    return int(((distractors.double() @ query.double()) > best).sum())


# ----------------------------------------------------------------------------- the run


def run_video_benchmark(settings: VideoBenchmarkSettings,
                        log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the video benchmark (see the module notes); JSON-ready results, no features.

    Raises:
        ValueError: invalid settings; FileNotFoundError: LFW folders missing.
    """
    import tempfile

    import attackers
    from cloak.opom import protect_photo
    from evaluation.video_clips import crossing_scene, render_clip_file

    settings.check()
    folds = settings.folds()
    say = log_line or (lambda line: None)
    started = time.perf_counter()
    size = parse_size(settings.size)
    frames_per_clip = max(2, round(settings.seconds * settings.fps))
    distractor_dir = settings.lfw / "distractors"
    distractor_files = sorted(distractor_dir.glob("*.jpg"))[:settings.distractors]
    if not distractor_files:
        raise FileNotFoundError(f"{distractor_dir}: no distractor photos")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as cloak video: parallel work is spread over threads per video
    try:
        detector, sface = attackers.load("mtcnn"), attackers.load("sface")
        tested = [t for f in folds for t in f.tested]
        recognizers = {n: attackers.load(BLACK_BOXES[n][0], reference=BLACK_BOXES[n][1])
                       for n in tested}
        surrogates = {s: attackers.load(s) for f in folds for s in f.surrogates}
        gallery = distractor_features(distractor_files, tested, recognizers, detector,
                                      settings.cache_dir, progress=settings.progress)
        people, skipped = _people(settings, detector, sface, say)
        cache = _mask_cache(settings, folds)
        masks = {p.name: _learn_masks(p, settings, folds, surrogates, cache) for p in people}
        say(f"masks ready ({cache})")

        # photo PSR of the same people with the same masks, on their 5 probes
        photo: dict[str, dict[str, list[int]]] = {}
        clean_probe: dict[str, dict[str, torch.Tensor]] = {}
        for person in people:
            frames = [p.face.frame for p in person.probes]
            clean_probe[person.name] = {n: _embed(recognizers[n], frames) for n in tested}
            photo[person.name] = {}
            for fold in folds:
                mask = masks[person.name][fold.name]
                shots = [protect_photo(p.pixels, [p.face], mask.delta, feather=mask.feather)
                         .round().clamp(0, 255) for p in person.probes]
                faces = central_faces(shots, detector)
                protected = [None if f is None else f.frame for f in faces]
                for name in fold.tested:
                    queries = _embed(recognizers[name], protected)
                    photo[person.name][name] = identity_ranks(
                        queries, clean_probe[person.name][name], gallery[name]).tolist()

        clips = []
        with tempfile.TemporaryDirectory(prefix="cloak-video-bench-") as tmp:
            for k in range(0, len(people), 2):
                pair = people[k:k + 2]
                stranger = distractor_files[(7919 * (k // 2 + 1) + settings.seed)
                                            % len(distractor_files)]
                actors = crossing_scene([p.probes[0].path for p in pair], stranger)
                source = Path(tmp) / f"clip{k // 2}.mp4"
                clip = render_clip_file(actors, detector, source, size=size,
                                        frames=frames_per_clip, fps=settings.fps,
                                        seed=settings.seed + k)
                clips.append(_run_clip(clip, source, pair, masks, folds, recognizers, gallery,
                                       clean_probe, detector, sface, settings, Path(tmp)))
                say(f"clip {k // 2}: {' + '.join(p.name for p in pair)}: "
                    f"{clips[-1]['runs'][0]['frames_per_second']:.1f} fps, right mask "
                    f"{clips[-1]['runs'][0]['placement']['right_share']:.3f}")
    finally:
        torch.set_num_threads(threads)

    result = {
        "benchmark": "video: cloak video on generated clips of LFW faces",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in
                     asdict(settings).items()},
        "frame_size": list(size), "frames_per_clip": frames_per_clip,
        "folds": [asdict(f) for f in folds],
        "people": [p.name for p in people], "skipped": skipped,
        "distractors": {"files": len(distractor_files),
                        "with_face": int(next(iter(gallery.values())).shape[0])},
        "photo_ranks": photo, "clips": clips,
        "wall_s": time.perf_counter() - started,
        "cpu": platform.processor() or platform.machine(),
    }
    result["summary"] = _summarise(result, folds)
    return result


def _run_clip(clip: SyntheticClip, source: Path, pair: Sequence[_Person],
              masks: dict[str, dict[str, Mask]], folds: Sequence[Fold],
              recognizers: dict[str, Recognizer], gallery: dict[str, torch.Tensor],
              clean_probe: dict[str, dict[str, torch.Tensor]], detector: MTCNN,
              sface: Recognizer, settings: VideoBenchmarkSettings, tmp: Path) -> dict[str, Any]:
    """Protect one clip per fold and measure speed, placement and per-frame/track PSR.

    The protection is :func:`cloak.video.protect.protect_video`'s two passes, called one by one
    so that the plan of the first is kept for :func:`mask_assignment`.
    """
    from cloak.video.protect import (
        EnrolledPerson,
        VideoOptions,
        analyse_video,
        render_video,
        track_summaries,
    )

    names = [p.name for p in pair]
    actors = [clip.labels.index(n) for n in names]
    count = clip.boxes.shape[0]
    indices = list(range(0, count, settings.eval_every))
    # the attacker's view of the clean clip (as decoded), for the clean per-frame PSR
    clean_faces = _attacker_faces(source, clip, actors, settings.eval_every, detector)
    record: dict[str, Any] = {"people": names, "stranger": clip.labels[-1], "frames": count,
                              "evaluated_frames": indices, "clean": {}, "runs": []}
    for actor, person in zip(actors, pair, strict=True):
        record["clean"][person.name] = {}
        for fold in folds:
            for name in fold.tested:
                feats = _embed(recognizers[name], clean_faces[actor])
                genuine = clean_probe[person.name][name][1:]
                record["clean"][person.name][name] = [
                    _rank(f, genuine, gallery[name]) for f in feats]
    options = VideoOptions(threads=settings.threads)
    for fold in folds:
        people = [EnrolledPerson(p.name, masks[p.name][fold.name], p.references) for p in pair]
        dest = tmp / f"{source.stem}-{fold.name}.mp4"
        cpu, start = time.process_time(), time.perf_counter()
        analysis = analyse_video(source, people, detector, sface, options)
        middle = time.perf_counter()
        render_video(analysis, dest, {p.name: p.mask for p in people}, options)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        placement = mask_assignment(analysis.plan, clip, set(names))
        faces = _attacker_faces(dest, clip, actors, settings.eval_every, detector)
        ranks: dict[str, dict[str, Any]] = {}
        for actor, person in zip(actors, pair, strict=True):
            ranks[person.name] = {}
            for name in fold.tested:
                feats = _embed(recognizers[name], faces[actor])
                genuine = clean_probe[person.name][name][1:]
                found = feats[~torch.isnan(feats[:, 0])]
                track_query = (torch.nn.functional.normalize(found.mean(0), dim=0)
                               if len(found) else torch.full((feats.shape[1],), math.nan))
                ranks[person.name][name] = {
                    "frames": [_rank(f, genuine, gallery[name]) for f in feats],
                    "undetected": int(torch.isnan(feats[:, 0]).sum()),
                    "track": _rank(track_query, genuine, gallery[name])}
        record["runs"].append({
            "fold": fold.name, "seconds": seconds, "frames_per_second": count / seconds,
            "real_time_ratio": count / seconds / clip.fps, "cpu_ms_per_frame": 1000 * cpu / count,
            "stage_seconds": {"analyse": middle - start, "render": start + seconds - middle},
            "tracks": track_summaries(analysis), "placement": placement, "ranks": ranks})
    return record


def _summarise(result: dict[str, Any], folds: Sequence[Fold]) -> dict[str, Any]:
    """Speed, placement and PSR@1 per recognizer: per frame, per track, photo, clean."""
    runs = [r for c in result["clips"] for r in c["runs"]]
    right = sum(r["placement"]["right"] for r in runs)
    needed = sum(r["placement"]["needed"] for r in runs)
    frames = sum(c["frames"] for c in result["clips"] for _ in c["runs"])
    seconds = sum(r["seconds"] for r in runs)
    summary: dict[str, Any] = {
        "frames_per_second": frames / seconds,
        "real_time_ratio": frames / seconds / result["settings"]["fps"],
        "cpu_ms_per_frame": float(np.mean([r["cpu_ms_per_frame"] for r in runs])),
        "right_mask_share": right / needed if needed else None,
        "right_mask": right, "person_frames": needed,
        "wrong_mask_frames": sum(r["placement"]["wrong_frames"] for r in runs),
        "recognizers": {}}
    for fold in folds:
        for name in fold.tested:
            per_frame = [k for r in runs if r["fold"] == fold.name
                         for person in r["ranks"].values() for k in person[name]["frames"]]
            per_track = [person[name]["track"] for r in runs if r["fold"] == fold.name
                         for person in r["ranks"].values()]
            clean = [k for c in result["clips"] for person in c["clean"].values()
                     for k in person[name]]
            photos = [k for ranks in result["photo_ranks"].values() for k in ranks[name]]
            entry = {"fold": fold.name, "frame_psr@1": psr(per_frame, 1),
                     "face_frames": len(per_frame), "track_psr@1": psr(per_track, 1),
                     "tracks": len(per_track), "photo_psr@1": psr(photos, 1),
                     "photos": len(photos), "clean_frame_psr@1": psr(clean, 1),
                     "undetected": sum(person[name]["undetected"] for r in runs
                                       if r["fold"] == fold.name
                                       for person in r["ranks"].values())}
            entry["frame_minus_photo"] = entry["frame_psr@1"] - entry["photo_psr@1"]
            summary["recognizers"][name] = entry
    values = list(summary["recognizers"].values())
    summary["mean"] = {key: float(np.mean([v[key] for v in values]))
                       for key in ("frame_psr@1", "track_psr@1", "photo_psr@1",
                                   "clean_frame_psr@1", "frame_minus_photo")}
    return summary


# ----------------------------------------------------------------------------- report


def report_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """The ``video`` section of docs/BENCHMARKS.md."""
    s, settings = result["summary"], result["settings"]
    width, height = result["frame_size"]
    rows = [[name, v["fold"], f"{v['photo_psr@1']:.3f} ({v['photos']})",
             f"{v['frame_psr@1']:.3f} ({v['face_frames']})",
             f"{v['track_psr@1']:.3f} ({v['tracks']})", f"{v['frame_minus_photo']:+.3f}",
             f"{v['clean_frame_psr@1']:.3f}", v["undetected"]]
            for name, v in s["recognizers"].items()]
    m = s["mean"]
    rows.append(["mean", "", f"{m['photo_psr@1']:.3f}", f"{m['frame_psr@1']:.3f}",
                 f"{m['track_psr@1']:.3f}", f"{m['frame_minus_photo']:+.3f}",
                 f"{m['clean_frame_psr@1']:.3f}", ""])
    table = markdown_table(["recognizer", "fold", "photo PSR@1 (probes)",
                            "per-frame PSR@1 (face-frames)", "per-track PSR@1 (tracks)",
                            "frame - photo", "clean per-frame PSR@1", "frames not re-detected"],
                           rows)
    folds = "; ".join(f"fold {f['name']}: surrogates {', '.join(f['surrogates'])} -> tested "
                      f"{', '.join(f['tested'])}" for f in result["folds"])
    clips = "; ".join(f"{' + '.join(c['people'])} (stranger {c['stranger']})"
                      for c in result["clips"])
    stages = result["clips"][0]["runs"][0]["stage_seconds"]
    share = s["right_mask_share"]
    return (
        f"## Video: cloak video on generated clips of real faces\n\n"
        f"`{command or 'run_video_benchmark'}`: {len(result['clips'])} clip(s) of "
        f"{result['frames_per_clip']} frames, {width}x{height} at {settings['fps']} fps "
        f"({clips}); each shows probe photo 0 of two enrolled people crossing and a stranger "
        f"(`evaluation/video_clips.py`). Masks: photo enrolment ({settings['mode']} preset"
        f"{'' if settings['steps'] is None else ', ' + str(settings['steps']) + ' steps'}) from "
        f"each person's first 10 photos, which also name their tracks; {folds}. Gallery: the "
        f"person's clean probes 1-4 + {result['distractors']['with_face']} distractors. "
        f"Per-frame PSR on one frame in {settings['eval_every']} of the written H.264 file "
        f"(attacker: MTCNN around the true face, then the recognizer); per-track: the mean "
        f"feature of a track's evaluated frames.\n\n"
        f"- speed: {s['frames_per_second']:.1f} frames/s = {s['real_time_ratio']:.2f}x real time "
        f"(all stages, threads per video: {settings['threads'] or 'all cores'}; "
        f"{s['cpu_ms_per_frame']:.0f} CPU ms per frame; first clip: analyse "
        f"{stages['analyse']:.1f} s, render {stages['render']:.1f} s) on a shared 2-core CPU "
        f"({result['cpu']})\n"
        f"- right mask on the right person: {s['right_mask']} of {s['person_frames']} "
        f"face-frames ({'n/a' if share is None else f'{share:.3f}'}); frames with a mask on "
        f"the wrong person: {s['wrong_mask_frames']}\n\n{table}\n")


def write_report(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
                 command: str | None = None, section: str = "video") -> str:
    """Write the JSON results and the ``video`` section of the markdown report; return it."""
    return publish(result, report_markdown(result, command), json_path, markdown_path, command,
                   section)

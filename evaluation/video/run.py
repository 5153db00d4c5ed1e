"""Running the video benchmark: clips, masks, ``cloak video`` per fold, the attacker."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from evaluation.protocol.folds import Fold, all_tested, load_black_boxes, load_surrogates
from evaluation.protocol.gallery import distractor_features
from evaluation.protocol.lfw import distractor_files
from evaluation.protocol.ranks import identity_ranks
from evaluation.protocol.recognition import embed, paste_and_round, redetect
from evaluation.video.attacker import attacker_faces, query_rank
from evaluation.video.people import Person, enrolled_people, learn_masks, mask_store
from evaluation.video.placement import mask_assignment
from evaluation.video.settings import VideoBenchmarkSettings, parse_size
from evaluation.video.summary import summarise

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer
    from cloak.mask import Mask
    from evaluation.video_clips import SyntheticClip

__all__ = ["clip_stranger", "run_clip", "run_video_benchmark"]


def clip_stranger(distractors: Sequence[Path], clip: int, seed: int) -> Path:
    """The distractor photo that plays the stranger of clip number ``clip`` (0-based)."""
    return distractors[(7919 * (clip + 1) + seed) % len(distractors)]


def run_video_benchmark(settings: VideoBenchmarkSettings,
                        log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the video benchmark (see the module notes); JSON-ready results, no features.

    Raises:
        ValueError: invalid settings; FileNotFoundError: LFW folders missing.
    """
    import tempfile

    import attackers
    from evaluation.video_clips import crossing_scene, render_clip_file

    settings.check()
    folds = settings.folds()
    say = log_line or (lambda line: None)
    started = time.perf_counter()
    size = parse_size(settings.size)
    frames_per_clip = max(2, round(settings.seconds * settings.fps))
    distractors = distractor_files(settings.lfw, settings.distractors)
    if not distractors:
        raise FileNotFoundError(f"{settings.lfw / 'distractors'}: no distractor photos")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as cloak video: parallel work is spread over threads per video
    try:
        detector, sface = attackers.load("mtcnn"), attackers.load("sface")
        tested = all_tested(folds)
        recognizers = load_black_boxes(tested)
        surrogates = load_surrogates(folds)
        gallery = distractor_features(distractors, tested, recognizers, detector,
                                      settings.cache_dir, progress=settings.progress)
        people, skipped = enrolled_people(settings, detector, sface, say)
        store = mask_store(settings, folds)
        masks = {p.name: learn_masks(p, settings, folds, surrogates, store) for p in people}
        say(f"masks ready ({store.folder})")

        # photo PSR of the same people with the same masks, on their 5 probes
        photo: dict[str, dict[str, list[int]]] = {}
        clean_probe: dict[str, dict[str, torch.Tensor]] = {}
        for person in people:
            frames = [p.face.frame for p in person.probes]
            clean_probe[person.name] = {n: embed(recognizers[n], frames) for n in tested}
            photo[person.name] = {}
            for fold in folds:
                mask = masks[person.name][fold.name]
                shots, _ = paste_and_round(person.probes, mask.delta, mask.feather)
                protected = redetect(shots, detector)
                for name in fold.tested:
                    queries = embed(recognizers[name], protected)
                    photo[person.name][name] = identity_ranks(
                        queries, clean_probe[person.name][name], gallery[name]).tolist()

        clips = []
        with tempfile.TemporaryDirectory(prefix="cloak-video-bench-") as tmp:
            for k in range(0, len(people), 2):
                pair = people[k:k + 2]
                actors = crossing_scene([p.probes[0].path for p in pair],
                                        clip_stranger(distractors, k // 2, settings.seed))
                source = Path(tmp) / f"clip{k // 2}.mp4"
                clip = render_clip_file(actors, detector, source, size=size,
                                        frames=frames_per_clip, fps=settings.fps,
                                        seed=settings.seed + k)
                clips.append(run_clip(clip, source, pair, masks, folds, recognizers, gallery,
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
        "distractors": {"files": len(distractors),
                        "with_face": int(next(iter(gallery.values())).shape[0])},
        "photo_ranks": photo, "clips": clips,
        "wall_s": time.perf_counter() - started,
        "cpu": platform.processor() or platform.machine(),
    }
    result["summary"] = summarise(result, folds)
    return result


def run_clip(clip: SyntheticClip, source: Path, pair: Sequence[Person],
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
    clean_faces = attacker_faces(source, clip, actors, settings.eval_every, detector)
    record: dict[str, Any] = {"people": names, "stranger": clip.labels[-1], "frames": count,
                              "evaluated_frames": indices, "clean": {}, "runs": []}
    for actor, person in zip(actors, pair, strict=True):
        record["clean"][person.name] = {}
        for fold in folds:
            for name in fold.tested:
                feats = embed(recognizers[name], clean_faces[actor])
                genuine = clean_probe[person.name][name][1:]
                record["clean"][person.name][name] = [
                    query_rank(f, genuine, gallery[name]) for f in feats]
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
        faces = attacker_faces(dest, clip, actors, settings.eval_every, detector)
        ranks: dict[str, dict[str, Any]] = {}
        for actor, person in zip(actors, pair, strict=True):
            ranks[person.name] = {}
            for name in fold.tested:
                feats = embed(recognizers[name], faces[actor])
                genuine = clean_probe[person.name][name][1:]
                found = feats[~torch.isnan(feats[:, 0])]
                track_query = (torch.nn.functional.normalize(found.mean(0), dim=0)
                               if len(found) else torch.full((feats.shape[1],), math.nan))
                ranks[person.name][name] = {
                    "frames": [query_rank(f, genuine, gallery[name]) for f in feats],
                    "undetected": int(torch.isnan(feats[:, 0]).sum()),
                    "track": query_rank(track_query, genuine, gallery[name])}
        record["runs"].append({
            "fold": fold.name, "seconds": seconds, "frames_per_second": count / seconds,
            "real_time_ratio": count / seconds / clip.fps, "cpu_ms_per_frame": 1000 * cpu / count,
            "stage_seconds": {"analyse": middle - start, "render": start + seconds - middle},
            "tracks": track_summaries(analysis), "placement": placement, "ranks": ranks})
    return record

"""The video benchmark's summary: speed, placement and PSR@1 per recognizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.protocol.folds import Fold
from evaluation.protocol.ranks import psr

__all__ = ["summarise"]


def summarise(result: dict[str, Any], folds: Sequence[Fold]) -> dict[str, Any]:
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

"""The video benchmark's report: the ``video`` section of docs/BENCHMARKS.md and the JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.report import markdown_table, publish

__all__ = ["report_markdown", "write_report"]


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

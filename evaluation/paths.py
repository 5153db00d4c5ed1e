"""Where the benchmarks find the project's data and keep their caches.

The data folder ``shared/data`` lies beside the repository (``../shared/data``); it is research
data, never copied into the repository (shared/data/README.md).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_CACHE", "DEFAULT_LFW", "DEFAULT_UTKFACE", "REPO", "SHARED_DATA"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_LFW = SHARED_DATA / "lfw"
DEFAULT_UTKFACE = SHARED_DATA / "utkface"
#: Distractor features and finished benchmark items (ignored by git).
DEFAULT_CACHE = REPO / "results" / "cache"

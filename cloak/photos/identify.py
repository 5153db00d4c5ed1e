"""Deciding whose photos these are: every face labelled by identity group, the person chosen.

The person is the group of similar faces present in the most photos
(:func:`~cloak.identity.cluster_faces`, :func:`~cloak.identity.main_identity`; the calibrated
threshold: :mod:`cloak.identity`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cloak.identity import cluster_faces, main_identity
from cloak.photos.options import Reporter
from cloak.photos.scan import Scan

__all__ = ["identify_person"]


def identify_person(scans: Sequence[Scan], reporter: Reporter) -> int | None:
    """Label every face by identity group (:attr:`Scan.label <cloak.photos.scan.Scan.label>`);
    return the person's label (None: no faces). A tie is decided by more and larger faces,
    with a notice."""
    with_faces = [s for s in scans if s.result is None and s.faces]
    if not with_faces:
        return None
    labels = cluster_faces(torch.cat([s.embeddings for s in with_faces])).tolist()
    start = 0
    for scan in with_faces:
        scan.label = labels[start:start + len(scan.faces)]
        start += len(scan.faces)
    person, tied = main_identity([s.label for s in with_faces],
                                 [[f.size for f in s.faces] for s in with_faces])
    count = sum(person in s.label for s in with_faces)
    if tied:
        reporter.note(f"several people appear in {count} photos each; the one with more and "
                      "larger faces is taken as the person (use --all-faces to protect everyone)")
    return person


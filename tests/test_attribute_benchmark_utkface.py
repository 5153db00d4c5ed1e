"""The UTKFace part of the attribute benchmark: the fixed order and malformed names."""

from __future__ import annotations

import pytest
from conftest import shared_data

from evaluation.attributes.utkface import utkface_faces


@pytest.mark.data
def test_malformed_names_are_set_aside():
    """The one UTKFace name with gender 3 is skipped with its reason; the others parse."""
    labelled, malformed = utkface_faces(shared_data("utkface", "random"))
    assert len(labelled) == 1999
    assert [m["file"] for m in malformed] == ["61_3_20170109150557335.jpg.chip.jpg"]
    assert "gender field '3'" in malformed[0]["reason"]
    first, _ = utkface_faces(shared_data("utkface", "balanced"), limit=6)
    assert len({(labels.male, labels.race) for _, labels in first}) >= 4   # a mixed sample

"""The attribute benchmark's record store: what keys it."""

from __future__ import annotations

import dataclasses

import pytest

from evaluation.attributes import AttributeSettings
from evaluation.attributes.records import record_store


@pytest.mark.data
def test_attribute_settings_key_the_store_only_with_cloak_attr(tmp_path):
    """The attribute settings key the record store only when cloak-attr is run."""
    base = AttributeSettings(cache_dir=tmp_path, conditions=("clean", "cloak", "cloak-attr"))
    plain = dataclasses.replace(base, conditions=("clean", "cloak"))
    folder = record_store(plain).folder
    for change in ({"protect_attributes": ("sex",)}, {"attribute_weight": 3.0},
                   {"identity_recognizers": ("sface",)}):
        assert record_store(dataclasses.replace(plain, **change)).folder == folder
        assert (record_store(dataclasses.replace(base, **change)).folder
                != record_store(base).folder)

"""The benchmark's conditions: what is done to a clean photo before the attacker receives it.

Each condition is one small object over :class:`Condition`: it says which physical mask is drawn
on the photo (``style``), whether a cloak is pasted (``cloaked``), into which photo
(:attr:`Condition.source`) and which of the clean photo's cloaks (:meth:`Condition.cloak_key`).
Names (``clean``, ``mask-<style>``, ``cloak``, ``cloak-attr``, ``cloak+mask-<style>``) are those
of the records, the JSON and the report.

>>> named("cloak+mask-paper").source
'mask-paper'
>>> named("cloak-attr").photo_keys(["cloak-attr/gear"])
('cloak-attr/gear',)
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.physical_masks import STYLES

__all__ = [
    "ALL_CONDITIONS", "ATTRIBUTE_CLOAK", "CONDITIONS", "AttributeCloak", "Cloak", "CloakedMask",
    "Condition", "PhysicalMask", "fold_key", "named", "fold_name", "with_style",
]

#: The attribute-aware cloak's condition (run only when asked for).
ATTRIBUTE_CLOAK = "cloak-attr"


class Condition:
    """The photo as it is (``clean``); the base of every condition.

    Attributes:
        name: the condition's name in records, JSON and report.
        style: the physical mask drawn on the photo (one of :data:`STYLES`), or None.
        cloaked: whether a cloak is pasted into the photo.
        per_fold: whether one photo is made per ``cloak-attr`` fold (else one per condition).
        searched: whether the LFW identity search scores the condition.
    """

    name: str = "clean"
    style: str | None = None
    cloaked: bool = False
    per_fold: bool = False
    searched: bool = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @property
    def source(self) -> str:
        """The condition whose photo the cloak is pasted into: ``clean`` or the physical mask's."""
        return "clean" if self.style is None else f"mask-{self.style}"

    @property
    def cloak_on_mask(self) -> bool:
        """Whether a cloak is pasted into a masked photo, at the face found there (the clean
        photo's alignment where none is found, counted as ``cloak_on_clean_alignment``)."""
        return self.cloaked and self.style is not None

    def photo_keys(self, folds: Sequence[str]) -> tuple[str, ...]:
        """Keys of the photos made for the condition, given the ``cloak-attr`` fold keys."""
        return tuple(folds) if self.per_fold else (self.name,)

    def cloak_key(self, photo_key: str) -> str:
        """Which cloak of the clean photo the photo ``photo_key`` pastes: ``"cloak"`` (the plain
        cloak) or a ``cloak-attr`` fold key."""
        if not self.cloaked:
            raise ValueError(f"{self.name}: no cloak is pasted")
        return photo_key if self.per_fold else "cloak"


class PhysicalMask(Condition):
    """``mask-<style>``: a synthetic physical mask drawn on the photo
    (:func:`evaluation.physical_masks.mask_faces`)."""

    def __init__(self, style: str) -> None:
        self.style = style
        self.name = f"mask-{style}"


class Cloak(Condition):
    """``cloak``: the clean photo's cloak pasted into the clean photo."""

    name = "cloak"
    cloaked = True


class AttributeCloak(Cloak):
    """``cloak-attr``: the cloak with the attribute term, one photo per leave-one-out fold
    (:func:`fold_key`); no LFW identity search (faceres-attributes shares faceres's weights)."""

    name = ATTRIBUTE_CLOAK
    per_fold = True
    searched = False


class CloakedMask(Cloak):
    """``cloak+mask-<style>``: the physical mask drawn first, then the clean photo's cloak pasted
    into the masked photo."""

    def __init__(self, style: str) -> None:
        self.style = style
        self.name = f"cloak+mask-{style}"


_ORDER: tuple[Condition, ...] = (
    Condition(), *(PhysicalMask(s) for s in STYLES), Cloak(), AttributeCloak(),
    *(CloakedMask(s) for s in STYLES))
_BY_NAME: dict[str, Condition] = {c.name: c for c in _ORDER}

#: Every condition, in report order.
ALL_CONDITIONS: tuple[str, ...] = tuple(_BY_NAME)
#: The default conditions, in report order (all but ``cloak-attr``).
CONDITIONS: tuple[str, ...] = tuple(n for n in ALL_CONDITIONS if n != ATTRIBUTE_CLOAK)


def named(name: str) -> Condition:
    """The condition called ``name`` (one of :data:`ALL_CONDITIONS`)."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown condition {name!r}; choose from {ALL_CONDITIONS}")
    return _BY_NAME[name]


def with_style(style: str) -> list[Condition]:
    """Every condition that draws the physical mask ``style`` (``mask-`` and ``cloak+mask-``)."""
    return [c for c in _ORDER if c.style == style]


def fold_key(scored: Sequence[str]) -> str:
    """Key of the ``cloak-attr`` photo made for one fold: ``cloak-attr/<scored predictors>``."""
    return f"{ATTRIBUTE_CLOAK}/{'+'.join(scored)}"


def fold_name(key: str) -> str:
    """The scored predictors' part of a fold key (``gear`` of ``cloak-attr/gear``)."""
    return key.split("/", 1)[1]

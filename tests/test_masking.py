"""The mask API: modes resolved to settings, settings recorded in and matched against masks,
then learning and refining with a real surrogate (dlib-resnet) on real LFW faces."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from attackers.frame import FRAME_SIZE
from cloak.mask import Mask
from cloak.masking import (
    REFINE,
    LearnSettings,
    MaskLearner,
    MaskRefiner,
    get_mode,
    mask_attribute_plan,
    mask_config,
    mask_digest,
    mask_matches,
    mask_settings,
    resolve_mode,
)
from cloak.opom import (
    MODES,
    TERMS,
    TERMS_OFF,
    OpomConfig,
    RefineRecipe,
    TrainingFace,
    learn_mask,
    protected_features,
    refine_jointly,
)
from cloak.opom.config import RECORDED_WHEN_ON

FAST = LearnSettings(mode="fast", steps=2, surrogates=("dlib-resnet",))


@pytest.fixture(scope="module")
def faces(lfw_frames) -> list[TrainingFace]:
    """3 real faces: canonical frames of one LFW person, each its own region (identity
    alignment)."""
    frames = next(iter(lfw_frames.values()))[:3]
    return [TrainingFace(f, torch.eye(2, 3)) for f in frames]


def test_resolve_mode_overrides_and_terms():
    config, surrogates = resolve_mode("balanced")
    assert config == MODES["balanced"].config and surrogates == MODES["balanced"].surrogates
    config, surrogates = resolve_mode("fast", ("a", "b"), seed=3, steps=None, eps=4.0)
    assert (config.seed, config.eps, config.steps, surrogates) == (3, 4.0, 20, ("a", "b"))
    assert resolve_mode("fast", [])[1] == MODES["fast"].surrogates
    off, _ = resolve_mode("strong", terms=(), linkage=2.0)
    assert all(getattr(off, t) == TERMS_OFF[t] for t in TERMS)
    kept, _ = resolve_mode("strong", terms=["linkage"], linkage=2.0)
    assert kept.linkage == 2.0 and not kept.views


def test_resolve_mode_exception():
    with pytest.raises(ValueError, match="unknown mode 'turbo'; choose one of fast, balanced"):
        get_mode("turbo")
    with pytest.raises(ValueError, match="eps must be > 0"):
        resolve_mode("fast", eps=-1.0)
    with pytest.raises(TypeError):
        resolve_mode("fast", colour="red")


def test_learn_settings_resolve():
    learn = LearnSettings(mode="strong", eps=6, steps=3, seed=7, terms=("views",),
                          protect_attributes=("race", "sex"))
    config, surrogates = learn.resolve()
    assert (config.eps, config.steps, config.seed, config.linkage, config.views) == (
        6.0, 3, 7, 0.0, True)
    assert surrogates == MODES["strong"].surrogates
    assert learn.protect_attributes == ("sex", "race")
    assert learn.attribute_plan() == MODES["strong"].attribute_plan(["sex", "race"])
    with pytest.raises(ValueError, match="unknown mode"):
        LearnSettings(mode="turbo").resolve()


def test_mask_settings_keys():
    config = MODES["fast"].config
    plain = mask_settings(config, "fast")
    fields = ({f.name for f in dataclasses.fields(OpomConfig)} - {"eps", "seed", "subspace"}
              - set(RECORDED_WHEN_ON))             # recorded only when not their default
    assert list(plain)[0] == "mode" and set(plain) == {"mode", *fields}
    assert plain["steps"] == 20 and plain["paste"] == "photo"
    plan = {"age-gender": ("sex", "age"), "gear": ("sex",)}
    hiding = mask_settings(config, "fast", plan)
    assert set(hiding) - set(plain) == {"protect_attributes", "attribute_surrogates",
                                        "attribute_weight"}
    assert hiding["protect_attributes"] == "sex,age"
    assert hiding["attribute_surrogates"] == "age-gender=sex+age,gear=sex"
    mask = Mask(torch.zeros(3, FRAME_SIZE, FRAME_SIZE), 8.0, "convex", ["a"], "p", 0,
                settings=hiding)
    assert mask_attribute_plan(mask) == plan
    mask.settings = plain
    assert mask_attribute_plan(mask) == {}


def test_mask_matches():
    config, names = FAST.resolve()
    delta = torch.zeros(3, FRAME_SIZE, FRAME_SIZE)
    settings = {**mask_settings(config, "fast"), "training_faces": 3}
    mask = Mask(delta, config.eps, config.subspace, list(names), "p", config.seed,
                settings=settings)
    assert mask_matches(mask, config, names, "fast")
    assert not mask_matches(mask, config, names, "balanced")
    assert not mask_matches(mask, dataclasses.replace(config, seed=1), names, "fast")
    assert not mask_matches(mask, config, ["other"], "fast")
    # a mask from before the optional terms records none of them: it matches them off
    off = dataclasses.replace(config, linkage=0.0, views=False, anchor=0.0)
    mask.settings = {k: v for k, v in mask_settings(off, "fast").items() if k not in TERMS}
    assert mask_matches(mask, off, names, "fast")
    assert not mask_matches(mask, config, names, "fast")
    # precision is recorded only when not float32: a float32 mask (or one from before the
    # setting) matches float32 only, and a bfloat16 mask keeps its setting
    assert "precision" not in mask_settings(config, "fast")
    half = dataclasses.replace(config, precision="bfloat16")
    assert not mask_matches(Mask(delta, config.eps, config.subspace, list(names), "p",
                                 config.seed, settings=settings), half, names, "fast")
    mask.settings = {**mask_settings(half, "fast"), "training_faces": 3}
    assert mask.settings["precision"] == "bfloat16" and mask_matches(mask, half, names, "fast")
    assert mask_config(mask).precision == "bfloat16"
    # photos per step likewise: recorded only when not 0 (all photos), as balanced mode's 5
    assert "per_step" not in mask_settings(config, "fast")
    balanced, _ = LearnSettings(mode="balanced").resolve()
    assert mask_settings(balanced, "balanced")["per_step"] == 5
    assert LearnSettings(mode="balanced", per_step=0).resolve()[0].per_step == 0


def test_mask_config_and_digest():
    delta = torch.linspace(-4, 4, 3 * FRAME_SIZE * FRAME_SIZE).reshape(3, FRAME_SIZE, FRAME_SIZE)
    mask = Mask(delta, 4.0, "convex", ["a"], "p", 5, settings={"mode": "strong", "feather": 10.0})
    config = mask_config(mask)
    assert config == dataclasses.replace(MODES["strong"].config, eps=4.0, seed=5, feather=10.0)
    mask.settings = {"mode": "ancient"}
    assert mask_config(mask).steps == MODES["balanced"].config.steps
    assert mask_config(mask).feather == 8.0                  # masks that predate the feather
    same = Mask(delta.clone(), 4.0, "center", ["b"], "q", 1)
    assert mask_digest(same) == mask_digest(mask)
    assert mask_digest(Mask(delta, 4.5, "center", ["b"], "q", 1)) != mask_digest(mask)
    assert mask_digest(Mask(-delta, 4.0, "center", ["b"], "q", 1)) != mask_digest(mask)


def test_mask_learner_records_its_settings(faces, dlib):
    loaded = []
    learner = MaskLearner(FAST, lambda name: loaded.append(name) or dlib)
    assert loaded == ["dlib-resnet"] and learner.describe() == "dlib-resnet (2 steps, eps 8)"
    steps = []
    mask = learner("Ada", faces[:2], lambda step, total, _loss: steps.append((step, total)),
                   extra_settings={"source_frames": "3,9"})
    config, _ = FAST.resolve()
    direct = learn_mask(faces[:2], [dlib], config)
    assert torch.equal(mask.delta, direct) and mask.delta.dtype == torch.float32
    assert steps == [(1, 2), (2, 2)]
    assert (mask.person, mask.eps, mask.seed, mask.subspace, mask.surrogates) == (
        "Ada", 8.0, 0, "convex", ["dlib-resnet"])
    assert mask.settings == {**mask_settings(config, "fast"), "training_faces": 2,
                             "source_frames": "3,9"}
    assert mask_matches(learner("Ada", faces[:2]), config, ["dlib-resnet"], "fast")


def test_mask_refiner_loads_on_first_use_and_keeps_batches_apart(faces, dlib):
    """The refiner loads its models once, refines each batch jointly from the center of the
    person's faces it was given as REFINE says (3 DI draws per step, draw k darkened by 0.5^k,
    the gradient taken ahead along the momentum), and pushes every
    later batch away from the protected faces it has seen (its own batches and remembered
    copies)."""
    config, _ = FAST.resolve()
    mask = Mask(learn_mask(faces[:2], [dlib], config), 8.0, "convex", ["dlib-resnet"], "Ada",
                0, settings=mask_settings(config, "fast"))
    loaded = []
    refine = MaskRefiner(mask, 2, lambda name: loaded.append(name) or dlib)
    assert loaded == []
    first, second = faces[:2], faces[2:]
    refine.add_person(first)
    refine.add_person(second)                         # the person's faces of the run, one by one
    refined = refine(first)
    assert loaded == ["dlib-resnet"] and refined.shape == (2, 3, FRAME_SIZE, FRAME_SIZE)
    settings = mask_config(mask)
    person = [torch.cat([protected_features(part, None, [dlib], settings)[0]
                         for part in (first, second)])]   # as the refiner batched them
    assert REFINE == RefineRecipe("center", draws=3, scale_invariance=True, nesterov=True)
    center = {"person": person, "recipe": REFINE}
    assert torch.equal(refined, refine_jointly(first, mask.delta, [dlib], settings, 2, **center))
    assert not torch.equal(refined, refine_jointly(first, mask.delta, [dlib], settings, 2))
    for plainer in ({"draws": 1}, {"scale_invariance": False}, {"nesterov": False}):
        recipe = dataclasses.replace(REFINE, **plainer)
        assert not torch.equal(refined, refine_jointly(first, mask.delta, [dlib], settings, 2,
                                                       person=person, recipe=recipe))
    seen = protected_features(first, refined, [dlib], settings)
    refine.remember(second)                       # a copy written earlier, read back
    seen = [torch.cat([seen[0], protected_features(second, None, [dlib], settings)[0]])]
    again = refine(second)
    assert loaded == ["dlib-resnet"]
    assert torch.equal(again, refine_jointly(second, mask.delta, [dlib], settings, 2,
                                             references=seen, **center))
    assert not torch.equal(again, refine_jointly(second, mask.delta, [dlib], settings, 2,
                                                 **center))

"""Refining a person's mask for new photos (:func:`cloak.opom.refine_mask` for one photo,
:func:`cloak.opom.refine_jointly` for many together, :class:`cloak.opom.RefineRecipe`) with a
real surrogate (dlib-resnet) and a real attribute predictor (age-gender) on real LFW faces;
each recipe setting against its plain counterpart, bit for bit where it must change nothing."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import lfw_aligned

from cloak.opom import (
    AttributeSurrogate,
    OpomConfig,
    RefineRecipe,
    learn_mask,
    nearest_references,
    protected_features,
    protected_frames,
    refine_jointly,
    refine_mask,
    training_face,
)

EPS = 8.0
PERSON = "Colin_Powell"
TRAIN = 4                     # the first 4 photos are the faces refined; the 5th is a new photo


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def person(mtcnn):
    """(photo, aligned face) for the first TRAIN + 1 LFW photos of PERSON."""
    return lfw_aligned(PERSON, TRAIN + 1, mtcnn)


@pytest.fixture(scope="module")
def faces(person):
    return [training_face(photo, face) for photo, face in person[:TRAIN]]


def test_refine_mask_starts_from_the_mask_and_fits_the_photo(person, faces, dlib):
    """A refined mask stays within eps, zero steps are refused, and it pushes its own photo's
    features further from the clean ones than the universal mask does (white-box dlib)."""
    config = OpomConfig(steps=3, seed=1)
    universal = learn_mask(faces, [dlib], config)
    photo, face = person[TRAIN]                       # a photo the mask never saw
    probe = training_face(photo, face)
    with pytest.raises(ValueError, match="at least one step"):
        refine_mask(probe, universal, [dlib], config, 0)
    with pytest.raises(ValueError, match="within eps"):
        learn_mask([probe], [dlib], config, start=universal * 2)
    refined = refine_mask(probe, universal, [dlib], config, 3)
    assert refined.abs().max() <= EPS and not torch.equal(refined, universal)
    with torch.no_grad():
        clean = dlib.embed(probe.clean_frame()[None])
        cosines = [float(clean @ dlib.embed(protected_frames([probe], d, "photo",
                                                             config.feather))[0])
                   for d in (universal, refined)]
    assert cosines[1] < cosines[0] - 0.05, cosines


def _mean_pairwise_cosine(model, faces, masks) -> float:
    with torch.no_grad():
        z = model.embed(torch.cat([protected_frames([f], m, "photo")
                                   for f, m in zip(faces, masks, strict=True)]))
    cosines = z @ z.T
    return float((cosines.sum() - cosines.trace()) / (len(z) * (len(z) - 1)))


def test_refine_jointly_is_refine_mask_per_photo_and_pushes_photos_apart(faces, dlib):
    """One photo (or no anti-linkage): each photo's mask is refine_mask's, bit for bit. With
    anti-linkage the protected photos of the person are less alike (white-box dlib, 4 LFW
    photos, 5 steps; measured 0.846 -> 0.798 mean pairwise cosine from a zero start)."""
    photos = faces[:4]
    universal = torch.zeros(3, 224, 224)
    alone = OpomConfig(linkage=0.0, seed=2)
    with pytest.raises(ValueError, match="at least one step"):
        refine_jointly(photos, universal, [dlib], alone, 0)
    single = refine_jointly(photos[:1], universal, [dlib], alone, 3)
    assert single.shape == (1, 3, 224, 224)
    assert torch.equal(single[0], refine_mask(photos[0], universal, [dlib], alone, 3))
    independent = refine_jointly(photos, universal, [dlib], alone, 5)
    joint = refine_jointly(photos, universal, [dlib], dataclasses.replace(alone, linkage=1.0), 5)
    assert joint.abs().max() <= EPS
    apart = [_mean_pairwise_cosine(dlib, photos, m) for m in (independent, joint)]
    assert apart[1] < apart[0] - 0.02, apart


def test_refine_jointly_with_attributes_is_refine_mask_for_one_photo(faces, dlib, age_gender):
    """The attribute term in joint refinement: one photo gives refine_mask's mask bit for bit,
    and the predictor moves the masks (it is not ignored)."""
    hide = [AttributeSurrogate(age_gender, ("sex",))]
    config = OpomConfig(seed=4)
    universal = torch.zeros(3, 224, 224)
    single = refine_jointly(faces[:1], universal, [dlib], config, 2, attribute_surrogates=hide)
    expected = refine_mask(faces[0], universal, [dlib], config, 2, attribute_surrogates=hide)
    assert torch.equal(single[0], expected)
    assert not torch.equal(single, refine_jointly(faces[:1], universal, [dlib], config, 2))


def test_refine_jointly_pushes_a_photo_away_from_its_references(faces, dlib):
    """A batch refined after another is pushed away from the earlier batch's protected photos
    (held fixed): on white-box dlib the new photos' mean cosine to them falls (2 + 2 LFW
    photos, 5 steps; measured 0.821 -> 0.810)."""
    config = OpomConfig(seed=5, linkage=1.0)
    universal = torch.zeros(3, 224, 224)
    earlier = refine_jointly(faces[:2], universal, [dlib], config, 5)
    seen = protected_features(faces[:2], earlier, [dlib], config)
    assert seen[0].shape == (2, 128)
    with pytest.raises(ValueError, match="one set of references per surrogate"):
        refine_jointly(faces[2:4], universal, [dlib], config, 1, references=seen * 2)
    cosines = []
    for references in (None, seen):
        later = refine_jointly(faces[2:4], universal, [dlib], config, 5, references=references)
        cosines.append(float((protected_features(faces[2:4], later, [dlib], config)[0]
                              @ seen[0].T).mean()))
    print(f"\nmean cosine to the earlier batch: {cosines[0]:.3f} -> {cosines[1]:.3f}")
    assert cosines[1] < cosines[0] - 0.005, cosines


def test_nearest_references_keeps_the_most_similar():
    clean = torch.eye(4)[:2]                        # two faces along axes 0 and 1
    references = F.normalize(torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0.6, 0.8, 0],
                                           [0.9, 0, 0, 0.1], [0, 0, 0, 1]]), dim=1)
    assert torch.equal(nearest_references(references, clean, 5), references)
    kept = nearest_references(references, clean, 2)
    assert torch.equal(kept, references[[0, 3]])
    assert nearest_references(references, clean, 0).shape == (0, 4)


def test_refine_jointly_from_the_batch_center(faces, dlib):
    """subspace="center": each photo is pushed away from the mean of the batch's clean features
    instead of its own, so on white-box dlib the protected photos end further from that center
    (4 LFW photos, 5 steps; measured mean cosine 0.880 -> 0.868)."""
    config = OpomConfig(seed=6, linkage=1.0)
    universal = torch.zeros(3, 224, 224)
    clean = protected_features(faces[:4], None, [dlib], config)[0]
    center = F.normalize(clean.mean(0), dim=0)
    distance = []
    for subspace in (None, "center"):
        masks = refine_jointly(faces[:4], universal, [dlib], config, 5,
                               recipe=RefineRecipe(subspace))
        assert masks.abs().max() <= EPS
        z = protected_features(faces[:4], masks, [dlib], config)[0]
        distance.append(float((z @ center).mean()))
    print(f"\nmean cosine to the batch center: own {distance[0]:.3f}, center {distance[1]:.3f}")
    assert distance[1] < distance[0] - 0.005, distance


def test_refine_jointly_person_features_replace_the_batch(faces, dlib):
    """person: the subspace is taken from the given clean features instead of the batch's
    own; features that ARE the batch's give the same masks bit for bit, and other
    photos' features (the next 2 LFW photos) give different ones."""
    config = OpomConfig(seed=6, linkage=1.0)
    universal = torch.zeros(3, 224, 224)
    own = protected_features(faces[:2], None, [dlib], config)
    other = protected_features(faces[2:4], None, [dlib], config)
    recipe = RefineRecipe("center")
    center = refine_jointly(faces[:2], universal, [dlib], config, 2, recipe=recipe)
    same = refine_jointly(faces[:2], universal, [dlib], config, 2, person=own, recipe=recipe)
    moved = refine_jointly(faces[:2], universal, [dlib], config, 2, person=other, recipe=recipe)
    assert torch.equal(center, same)
    assert not torch.equal(center, moved) and moved.abs().max() <= EPS
    with pytest.raises(ValueError, match="person features"):
        refine_jointly(faces[:2], universal, [dlib], config, 1, person=own)


def test_refine_jointly_draws_average_di_draws(faces, dlib):
    """draws: each step averages the surrogate's gradient over that many DI draws. With DI
    off every draw is the same photo, so 3 draws give exactly the masks of 1; with DI on
    (the shipped setting) they differ; 0 draws are refused."""
    universal = torch.zeros(3, 224, 224)
    plain = OpomConfig(seed=2, linkage=1.0, diversity=0.0)
    masks = [refine_jointly(faces[:2], universal, [dlib], plain, 2,
                            recipe=RefineRecipe("center", draws=d)) for d in (1, 3)]
    assert torch.equal(*masks)
    shipped = OpomConfig(seed=2, linkage=1.0)
    masks = [refine_jointly(faces[:2], universal, [dlib], shipped, 2,
                            recipe=RefineRecipe("center", draws=d)) for d in (1, 3)]
    assert not torch.equal(*masks) and masks[1].abs().max() <= EPS
    with pytest.raises(ValueError, match="one draw"):
        RefineRecipe(draws=0)
    with pytest.raises(ValueError, match="subspace 'hull'"):
        RefineRecipe("hull")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one step"):
        refine_jointly(faces[:2], universal, [dlib], shipped, 0, recipe=RefineRecipe())


def test_refine_jointly_scale_invariance_scales_later_draws(faces, dlib):
    """scale_invariance: draw k sees the photos' pixel values times 0.5 ** k. With one draw
    nothing changes (bit for bit); with DI off, 3 SI draws differ from 3 plain ones (which
    equal one draw), and the masks stay within eps."""
    universal = torch.zeros(3, 224, 224)
    plain = OpomConfig(seed=2, linkage=1.0, diversity=0.0)
    one = [refine_jointly(faces[:2], universal, [dlib], plain, 2,
                          recipe=RefineRecipe("center", scale_invariance=si))
           for si in (False, True)]
    assert torch.equal(*one)
    three = refine_jointly(faces[:2], universal, [dlib], plain, 2,
                           recipe=RefineRecipe("center", draws=3, scale_invariance=True))
    assert not torch.equal(three, one[0]) and three.abs().max() <= EPS


def test_refine_jointly_nesterov_takes_the_gradient_ahead(faces, dlib):
    """nesterov: each step's gradient is taken at project(delta + step_size * mu * momentum):
    the same masks bit for bit at the first step (zero momentum) and without momentum (mu 0),
    other masks (within eps) after 3 steps with MI (mu 1, shipped)."""
    plain, ahead = OpomConfig(seed=2, linkage=1, diversity=0), RefineRecipe("center", nesterov=True)
    for config, steps, same in ((plain, 1, True), (plain, 3, False),
                                (dataclasses.replace(plain, momentum=0.0), 3, True)):
        masks = [refine_jointly(faces[:2], torch.zeros(3, 224, 224), [dlib], config, steps,
                                recipe=r) for r in (RefineRecipe("center"), ahead)]
        assert torch.equal(*masks) is same and masks[1].abs().max() <= EPS, (config, steps)

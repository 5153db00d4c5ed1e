"""The OPOM optimiser: its settings, then real masks learned on real LFW faces with real
surrogates (dlib-resnet, facenet), checked on the surrogates and on a recognizer outside the
ensemble (sface); the attribute term on known outputs, then on real faces with a real attribute
predictor (age-gender). The update pieces it is built of: tests/test_steps.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import lfw_photos

from cloak.faces import AlignedFace
from cloak.faces.align import to_frame
from cloak.opom import (
    ATTRIBUTES,
    MODES,
    AttributeSurrogate,
    OpomConfig,
    RefineRecipe,
    attribute_entropy,
    attribute_names,
    learn_mask,
    nearest_references,
    protect_photo,
    protected_features,
    protected_frames,
    refine_jointly,
    refine_mask,
    training_face,
)
from cloak.steps import random_start
from cloak.subspace import subspace_distance

EPS = 8.0
PERSON = "Colin_Powell"
TRAIN, PROBES = 4, 2          # first 4 photos learn the mask, the next 2 are new photos


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_config_exception():
    with pytest.raises(ValueError, match="subspace"):
        OpomConfig(subspace="sphere")
    with pytest.raises(ValueError, match="paste"):
        OpomConfig(paste="video")
    with pytest.raises(ValueError, match="ti_kernel"):
        OpomConfig(ti_kernel=4)
    assert set(MODES) == {"fast", "balanced", "strong"}


# ------------------------------------------------------------------------------- real faces


@pytest.fixture(scope="module")
def person(mtcnn):
    """(photo, aligned face) for the first TRAIN + PROBES LFW photos of PERSON."""
    from cloak.faces import align_faces
    from evaluation.protocol.lfw import central_face_index, load_rgb

    photos = [load_rgb(p) for p in lfw_photos(PERSON, TRAIN + PROBES)]
    pairs = []
    for photo, found in zip(photos, align_faces(photos, mtcnn), strict=True):
        assert found, "MTCNN found no face in an LFW photo"
        boxes = torch.stack([f.detection.box for f in found])
        pairs.append((photo, found[central_face_index(boxes, tuple(photo.shape[1:]))]))
    return pairs


@pytest.fixture(scope="module")
def faces(person):
    return [training_face(photo, face) for photo, face in person[:TRAIN]]


@pytest.fixture(scope="module")
def dlib():
    import attackers

    return attackers.load("dlib-resnet")


@pytest.fixture(scope="module")
def facenet():
    import attackers

    return attackers.load("facenet")


def test_training_face_region_reproduces_the_frame(person, faces):
    photo, face = person[0]
    assert faces[0].region.shape[1] < photo.shape[1] or faces[0].region.shape[2] < photo.shape[2]
    assert (faces[0].clean_frame() - face.frame).abs().max() < 1e-2
    # a 4x larger photo of the same face: the region is downscaled, the frame nearly the same
    big = F.interpolate(photo[None], scale_factor=4, mode="bicubic", align_corners=False)[0]
    up = torch.tensor([[0.25, 0.0, -0.375], [0.0, 0.25, -0.375], [0.0, 0.0, 1.0]])
    bigface = AlignedFace(face.frame, (torch.cat([face.matrix, up[2:]]) @ up)[:2], face.detection)
    large = training_face(big.clamp(0, 255), bigface)
    assert max(large.region.shape[1:]) <= 2 * 1.5 * 224       # two region pixels per frame pixel
    assert (large.clean_frame() - face.frame).abs().mean() < 3.0


def test_paste_paths(faces):
    zero = torch.zeros(3, 224, 224)
    clean = torch.stack([f.clean_frame() for f in faces])
    torch.testing.assert_close(protected_frames(faces, zero, "photo"), clean, atol=1e-3, rtol=0)
    torch.testing.assert_close(protected_frames(faces, zero, "frame"), clean)
    flat = torch.full((3, 224, 224), 5.0)                 # a smooth mask survives both paths
    inner = (slice(None), slice(None), slice(60, 160), slice(60, 160))
    for paste in ("photo", "frame"):
        diff = (protected_frames(faces, flat, paste) - clean)[inner]
        exact = ((diff - 5.0).abs() < 1e-2).float().mean()       # the rest: clipped at 255
        assert exact > 0.98 and diff.max() < 5.0 + 1e-3, (paste, exact)


def test_protect_photo_bound(person):
    photo, face = person[0]
    delta = random_start((3, 224, 224), EPS, gen(0))
    for mode in ("bilinear", "nearest"):
        out = protect_photo(photo, [face], delta, mode=mode)
        assert out.shape == photo.shape and out.min() >= 0 and out.max() <= 255
        assert (out - photo).abs().max() <= EPS + 1e-4
    torch.testing.assert_close(protect_photo(photo, [], delta), photo)


def test_learn_mask_exception(faces, dlib):
    import attackers

    with pytest.raises(ValueError, match="training face"):
        learn_mask([], [dlib])
    with pytest.raises(ValueError, match="surrogate"):
        learn_mask(faces, [])
    with pytest.raises(ValueError, match="black box"):
        learn_mask(faces, [attackers.load("sface", reference=True)])


def test_same_seed_same_mask(faces, dlib):
    config = OpomConfig(steps=3, seed=7)
    a = learn_mask(faces, [dlib], config)
    b = learn_mask(faces, [dlib], config)
    assert a.shape == (3, 224, 224) and torch.equal(a, b)
    assert a.abs().max() <= EPS
    assert not torch.equal(a, learn_mask(faces, [dlib], OpomConfig(steps=3, seed=8)))



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


def test_eot_is_seeded_and_reaches_the_training_path(faces, dlib):
    """EOT transforms each protected region before re-alignment; the same seed, the same mask."""
    from cloak.eot import gaussian_blur

    delta = random_start((3, 224, 224), EPS, gen(0))
    plain = protected_frames(faces[:2], delta, "photo")
    blurred = protected_frames(faces[:2], delta, "photo",
                               transform=lambda images: gaussian_blur(images, 2.0))
    inner = (slice(None), slice(None), slice(40, 184), slice(40, 184))
    # the blur removes most of the uniform noise: the frames move by levels, not float error
    assert (blurred - plain)[inner].abs().mean() > 2.0
    config = OpomConfig(steps=3, seed=3, eot=True)
    a, b = learn_mask(faces, [dlib], config), learn_mask(faces, [dlib], config)
    assert torch.equal(a, b) and a.abs().max() <= EPS
    assert not torch.equal(a, learn_mask(faces, [dlib], OpomConfig(steps=3, seed=3)))

def objective(faces, surrogate, delta, kind) -> float:
    """Mean subspace distance of the protected training frames (photo path, no DI)."""
    with torch.no_grad():
        a = surrogate.embed(torch.stack([f.clean_frame() for f in faces]))
        z = surrogate.embed(protected_frames(faces, delta, "photo"))
        return subspace_distance(z, a, kind).mean().item()


@pytest.mark.parametrize("kind", ["center", "affine", "convex"])
def test_loss_increases(faces, dlib, kind):
    config = OpomConfig(steps=8, warmup=2, subspace=kind, seed=0)
    losses = []
    delta = learn_mask(faces, [dlib], config, progress=lambda s, n, loss: losses.append(loss))
    assert len(losses) == 8 and losses[-1] > losses[0]
    start = random_start((3, 224, 224), EPS, gen(0))          # the optimiser's own start
    before, after = objective(faces, dlib, start, kind), objective(faces, dlib, delta, kind)
    assert after > before + 0.1, (before, after)


def test_bfloat16_learns_as_float32(faces, dlib):
    """The bfloat16 surrogates (autocast) give another mask that pushes as far: the float32
    objective of the learned masks, both measured in float32 (measured: gains 0.184 and 0.181)."""
    config = OpomConfig(steps=8, warmup=2, seed=0)
    full = learn_mask(faces, [dlib], config)
    half = learn_mask(faces, [dlib], dataclasses.replace(config, precision="bfloat16"))
    assert half.dtype == torch.float32 and half.abs().max() <= EPS
    assert not torch.equal(full, half)
    start = objective(faces, dlib, random_start((3, 224, 224), EPS, gen(0)), "convex")
    gains = [objective(faces, dlib, d, "convex") - start for d in (full, half)]
    assert gains[1] > 0.8 * gains[0] > 0.08, gains


def cosine_to_person(recognizer, clean: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Cosine of each frame's feature to the person's clean class center, (N,)."""
    with torch.no_grad():
        center = F.normalize(recognizer.embed(clean).mean(0), dim=0)
        return recognizer.embed(frames) @ center


def test_mask_protects_and_transfers(person, faces, dlib, facenet, lfw_frames):
    """Learn on dlib-resnet + facenet (4 photos, 20 steps); check them and sface (never seen).

    Cosines differ in scale between models (dlib puts different people at about 0.7), so each
    drop is measured as a share of the model's clean margin: mean cosine of the person's photos
    to their class center minus that of 8 photos of 2 other people. Measured here: about 0.6 on
    the surrogates, 0.3 on sface.
    """
    import attackers

    delta = learn_mask(faces, [dlib, facenet], OpomConfig(steps=20, seed=0))
    assert delta.abs().max() <= EPS
    clean = torch.stack([f.frame for _, f in person])
    others = torch.cat([lfw_frames[p] for p in lfw_frames if p != PERSON])
    # shipped path on all photos, the 2 unseen ones included: paste, round to 8 bits, re-align
    protected = torch.stack([
        to_frame(protect_photo(photo, [face], delta).round(), face.matrix[None])[0]
        for photo, face in person])
    drops = {}
    for model in (dlib, facenet, attackers.load("sface")):
        before = cosine_to_person(model, clean[:TRAIN], clean)
        after = cosine_to_person(model, clean[:TRAIN], protected)
        margin = before.mean() - cosine_to_person(model, clean[:TRAIN], others).mean()
        drops[model.name] = ((before - after).mean() / margin).item()
        assert (after[TRAIN:] < before[TRAIN:]).all(), model.name    # unseen photos too
    assert drops["dlib-resnet"] > 0.35 and drops["facenet"] > 0.35, drops
    assert drops["sface"] > 0.12, drops                               # black box: modest


# ------------------------------------------------------------------------------- attribute term


def test_attribute_entropy_against_direct_computation():
    """Normalised entropies of known outputs, computed by hand: sex [1 - p, p] over log 2, age
    bins (or gear's age groups) over log 7, race over log 5, averaged over the attributes."""
    sex = torch.tensor([0.5, 0.9, 1.0])
    bins = torch.tensor([[1 / 7] * 7, [0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0],
                         [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    race = torch.tensor([[0.2] * 5, [0.7, 0.1, 0.1, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25, 0.0]])
    outputs = {"sex_male_prob": sex, "age_years": torch.tensor([30.0, 30.0, 25.0]),
               "age_bins": bins, "race": race}
    h_sex = [1.0, -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2), 0.0]
    h_age = [1.0, math.log(2) / math.log(7), 0.0]
    h_race = [1.0, -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1)) / math.log(5),
              math.log(4) / math.log(5)]
    expect = {"sex": h_sex, "age": h_age, "race": h_race}
    for chosen in (("sex",), ("age",), ("race",), ("sex", "race"), ATTRIBUTES):
        direct = [sum(expect[a][i] for a in chosen) / len(chosen) for i in range(3)]
        got = attribute_entropy(outputs, chosen)
        assert got.shape == (3,)
        torch.testing.assert_close(got, torch.tensor(direct), atol=1e-6, rtol=0)
    gear = {"sex_male_prob": sex, "age_groups": bins, "race": race}        # gear's age key
    torch.testing.assert_close(attribute_entropy(gear, ["age"]), torch.tensor(h_age),
                               atol=1e-6, rtol=0)
    x = sex.clone().requires_grad_(True)                        # finite gradients, even at p = 1
    attribute_entropy({"sex_male_prob": x}, ["sex"]).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0] == 0 and x.grad[1] < 0
    with pytest.raises(ValueError, match="race"):
        attribute_entropy({"sex_male_prob": sex}, ["race"])
    with pytest.raises(ValueError, match="at least one"):
        attribute_entropy(outputs, [])


def test_attribute_names_and_mode_plans():
    assert attribute_names(["race", "sex", "sex"]) == ("sex", "race")
    assert attribute_names([]) == ()
    with pytest.raises(ValueError, match="hair"):
        attribute_names(["sex", "hair"])
    for mode in MODES.values():
        assert mode.attribute_plan([]) == {}
        race = mode.attribute_plan(["race"])
        assert race == {"gear": ("race",)}
        plan = mode.attribute_plan(["race", "sex"])
        assert plan["gear"] == ("sex", "race") and set(plan) >= {"age-gender", "gear"}
        assert all(a == ("sex",) for n, a in plan.items() if n != "gear")


@pytest.fixture(scope="module")
def age_gender():
    import attackers

    return attackers.load("age-gender")


@pytest.mark.data
def test_attribute_surrogate_exception(age_gender):
    import attackers

    assert AttributeSurrogate(age_gender, ("age", "sex")).attributes == ("sex", "age")
    with pytest.raises(ValueError, match="does not predict"):
        AttributeSurrogate(age_gender, ("race",))
    with pytest.raises(ValueError, match="at least one"):
        AttributeSurrogate(age_gender, ())
    with pytest.raises(ValueError, match="black box"):
        AttributeSurrogate(attackers.load("age-gender", reference=True), ("sex",))


def sex_entropy(model, faces, delta) -> torch.Tensor:
    """(n,) normalised sex entropy of ``model`` on the protected training frames (photo path)."""
    with torch.no_grad():
        return attribute_entropy(model.predict(protected_frames(faces, delta, "photo")), ["sex"])


def test_attribute_term_raises_entropy(faces, dlib, age_gender):
    """8 steps with age-gender's sex in the loss: its mean sex entropy on the training photos
    rises well above both the clean photos' and the identity-only mask's (measured here: clean
    0.03, identity only 0.06, with the term 0.32: momentum carries two of the four photos past
    p = 0.5 to "female"), and the same seed gives the same mask."""
    config = OpomConfig(steps=8, seed=0)
    term = [AttributeSurrogate(age_gender, ("sex",))]
    plain = learn_mask(faces, [dlib], config)
    hidden = learn_mask(faces, [dlib], config, attribute_surrogates=term)
    assert torch.equal(hidden, learn_mask(faces, [dlib], config, attribute_surrogates=term))
    assert hidden.abs().max() <= EPS and not torch.equal(plain, hidden)
    clean = sex_entropy(age_gender, faces, torch.zeros(3, 224, 224)).mean().item()
    identity_only = sex_entropy(age_gender, faces, plain).mean().item()
    with_term = sex_entropy(age_gender, faces, hidden).mean().item()
    assert with_term > max(clean, identity_only) + 0.15, (clean, identity_only, with_term)
    with pytest.raises(ValueError, match="attribute_weight"):
        learn_mask(faces, [dlib], config, attribute_surrogates=term, attribute_weight=0.0)


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
        refine_jointly(faces[:2], universal, [dlib], shipped, 1, recipe=RefineRecipe(draws=0))


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

"""The OPOM optimiser: one universal mask per person, learned against a surrogate ensemble.

OPOM (Zhong & Deng, "OPOM: Customized Invisible Cloak towards Face Privacy Protection", TPAMI
2022) learns one perturbation ``delta`` from a handful of a person's photos that pushes every
protected feature away from the person's feature subspace (:mod:`cloak.subspace`). Here the mask
lives in the canonical frame (:mod:`attackers.frame`), 3 x 224 x 224 in pixel levels, and the
ensemble shares it: each surrogate sees the protected frame through its own differentiable crop.

The modules, in the order a mask is made:

- :mod:`cloak.opom.config`: :class:`OpomConfig`, the settings of one optimisation, and the
  optional objective terms (:data:`TERMS`, :func:`with_terms`);
- :mod:`cloak.opom.attributes`: the optional attribute term (:class:`AttributeSurrogate`,
  :func:`attribute_entropy`);
- :mod:`cloak.opom.modes`: the ``--mode`` presets (:data:`MODES`);
- :mod:`cloak.opom.training`: a photo's training face (:func:`training_face`), the protected
  frames the surrogates see (:func:`protected_frames`), a mask applied to a photo
  (:func:`protect_photo`);
- :mod:`cloak.opom.learn`: the optimiser itself (:func:`learn_mask`, :func:`refine_mask`);
- :mod:`cloak.opom.refine`: the mask refined for many photos together (:func:`refine_jointly`,
  :class:`BatchRefiner`).

On a white-box surrogate the mask moves the training photos' cosine to the class center by
-0.93 but new photos' by only -0.54; black boxes it never saw, though, miss the person on only
0.52 of the very photos it was learned from, against 0.47 of new ones, while a mask refined
for one photo reaches 0.88 (6 LFW people, docs/BENCHMARKS.md "issue16-alignment"). The limit
is what one mask shared by many photos carries to unseen recognizers, not generalisation.

>>> # faces = [training_face(photo, face) for photo, face in pairs]
>>> # surrogates = [attackers.load(n) for n in MODES["balanced"].surrogates]
>>> # delta = learn_mask(faces, surrogates, MODES["balanced"].config)   # (3, 224, 224)
>>> # out = protect_photo(photo, [face], delta)                        # (3, H, W) in [0, 255]
>>> # plan = MODES["balanced"].attribute_plan(["sex"])      # {"age-gender": ("sex",), ...}
>>> # hide = [AttributeSurrogate(attackers.load(n), a) for n, a in plan.items()]
>>> # delta = learn_mask(faces, surrogates, config, attribute_surrogates=hide)
"""

from cloak.opom.attributes import (
    ATTRIBUTES,
    DEFAULT_ATTRIBUTE_WEIGHT,
    AttributeSurrogate,
    attribute_entropy,
    attribute_names,
)
from cloak.opom.config import (
    DEFAULT_FEATHER,
    MIN_VIEWS,
    PRECISIONS,
    TERMS,
    TERMS_OFF,
    OpomConfig,
    PastePath,
    with_terms,
)
from cloak.opom.learn import learn_mask, refine_mask
from cloak.opom.modes import MODES, Mode
from cloak.opom.refine import (
    MAX_REFERENCES,
    BatchRefiner,
    RefineRecipe,
    nearest_references,
    protected_features,
    refine_jointly,
)
from cloak.opom.training import TrainingFace, protect_photo, protected_frames, training_face

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_ATTRIBUTE_WEIGHT",
    "DEFAULT_FEATHER",
    "MAX_REFERENCES",
    "MIN_VIEWS",
    "MODES",
    "PRECISIONS",
    "TERMS",
    "TERMS_OFF",
    "AttributeSurrogate",
    "BatchRefiner",
    "Mode",
    "OpomConfig",
    "PastePath",
    "RefineRecipe",
    "TrainingFace",
    "attribute_entropy",
    "attribute_names",
    "learn_mask",
    "nearest_references",
    "protect_photo",
    "protected_features",
    "protected_frames",
    "refine_jointly",
    "refine_mask",
    "training_face",
    "with_terms",
]

"""Attribute leakage: does a cloak protect sex, age and race better than a physical face mask?

After Seneviratne et al., "Does a Face Mask Protect my Privacy?" (AJCAI 2021), with cloaks
added. Every face is shown to three attribute predictors (:data:`.settings.PREDICTORS`, all
black boxes here: the cloak is learned against identity recognizers only) under each condition
of :data:`CONDITIONS` (each an object of :mod:`.conditions`):

- ``clean``: the photo as it is;
- ``mask-paper``, ``mask-surgical``, ``mask-cloth``: a synthetic physical mask drawn on the photo
  (:func:`evaluation.physical_masks.mask_faces`, 68 dlib landmarks; seeded per face, the same
  mask in the ``cloak+mask`` condition of that style);
- ``cloak``: an OPOM mask (:func:`cloak.opom.learn_mask`, surrogates and settings of
  ``MODES[mode]``, ``fast`` by default) pasted by :func:`cloak.opom.protect_photo`;
- ``cloak+mask-<style>``: the person wears the physical mask in the photo, then the photo is
  cloaked: the cloak of the ``cloak`` condition (learned from the clean photo or photos, as a
  universal mask is learned once and reused) is pasted into the masked photo, at the face MTCNN
  finds in the masked photo (the clean photo's alignment where it finds none, counted as
  ``cloak_on_clean_alignment``). One cloak per face or person serves every cloaked condition,
  on UTKFace and LFW alike;
- ``cloak-attr`` (only when asked for; not in the default :data:`CONDITIONS`): the cloak with
  the attribute term (:class:`cloak.opom.AttributeSurrogate`, ``--protect-attributes``) on
  ``protect_attributes``, scored leave-one-out over the attribute predictors: each fold of
  :data:`.settings.ATTRIBUTE_FOLDS` learns its own cloak (same recognizers, seed and steps as
  ``cloak``) with some predictors (torch, white-box) in the loss and is scored only by the
  others, so no predictor is ever scored on a cloak it helped to make. Fold 1: age-gender and
  faceres-attributes in the loss (sex, age), gear scored; fold 2: gear in the loss (sex, age
  and race), age-gender and faceres-attributes scored. Race is predicted by gear alone, so it
  is pushed only in fold 2 and scored only in fold 1 (where no race predictor is in the loss):
  the race row of ``cloak-attr`` measures the side effect of the sex/age term, not race
  protection. The ``cloak-attr`` row takes each predictor's figures from the fold that held it
  out; every fold also stores all predictors' outputs (white-box ones included, reported as
  such). Its identity cost: per fold and for ``cloak``, the cosine between the clean and the
  protected face's features on black-box recognizers (``identity_recognizers``, sharing no
  weights with any surrogate), and the SSIM of the protected photo to the clean one.

Every condition's photo is rounded to 8 bits, as a written file would be, and the face is
detected and aligned again (MTCNN, the face nearest the centre), as an attacker would do. A face
not found again is counted per condition (``not_redetected``) and still predicted, on the clean
photo's alignment (an attacker who knows where the face is): attribute metrics are thus never
flattered by a detector miss, and the count says how often an attacker would have had no face.

UTKFace (``utkface/balanced`` and ``utkface/random``; labels in the file names, one photo per
person): each 200x200 chip gets a ``pad``-pixel border (black by default, ``pad_mode``) before
MTCNN; without it MTCNN puts the eyes on the eyebrows. The attacker pads the same way. Masks are
drawn on the padded photo and cropped back to the chip; the cloak works on the chip itself (as
the tool would on a 200x200 photo). UTKFace has one photo per person, so each face's cloak is
learned from that single photo and applied to it: a one-photo cloak, the most favourable case
for the cloak (it is tested on its training photo). Faces are taken in a fixed pseudo-random
order (SHA-256 of the path inside the dataset), so ``limit`` gives a sample that mixes sexes,
races and ages. A file whose name does not parse (one in ``random``) is skipped and listed; a
face MTCNN does not find on the clean chip is counted (``not_detected``); a face whose physical
mask fails (landmarks) is counted per style (``mask_failed``). Metrics are computed on the faces
that have every condition (``scored``), so all conditions compare the same faces:
:func:`evaluation.attribute_metrics.report.attribute_report` gives sex accuracy, race accuracy
(gear), age MAE, 7-bin age accuracy, each with its baseline (majority share; MAE of the median age),
95% percentile-bootstrap intervals over faces (the same draws for every condition), the privacy
vulnerability index (PVI) and its relative reduction against ``clean``.

LFW (no attribute labels): :func:`evaluation.protocol.split_photos` as in the OPOM benchmark
(per identity, sorted, the first ``n_train`` photos with a face learn the cloak, the next
``n_probe`` are probes). One cloak per person, learned from the clean training photos, is
pasted into every probe (masked or not). The predictions on the clean probes are the reference;
per condition the flip rates of the predicted sex, race and age bin and the mean shift of the
predicted age are reported, with intervals over probes. Identity leakage on the same photos:
each condition's probe frame (the one the predictors saw) is searched by the black-box
recognizers (:meth:`AttributeSettings.lfw_recognizers`: every recognizer of the OPOM
benchmark that is not one of the cloak's surrogates) in the OPOM benchmark's gallery (the
person's other clean probes + the LFW distractors, :func:`evaluation.protocol.gallery.
distractor_features`); PSR@1 per recognizer and their mean, 95% bootstrap intervals over
identities. Unlike the OPOM benchmark, a probe whose face is not found again is searched with
the clean photo's alignment (not counted as protected), so these PSR are never flattered by a
detector miss. ``cloak-attr`` gets no identity PSR (faceres-attributes shares faceres's
weights); its identity cost is the cosine table.

Every finished face (UTKFace) or identity (LFW) is written to
``cache_dir/runs/<settings digest>/`` (LFW: its own digest, which also covers the identity
recognizers and distractors) as JSON (file names, labels, predictions as plain floats,
re-detection flags, timings; no pixels, crops or features), so an interrupted run resumes. The
attribute cloak's settings enter the digest only when ``cloak-attr`` is run, so the records of
other runs keep their digest.

Modules: :mod:`.conditions` (what each condition does to a photo), :mod:`.settings`,
:mod:`.photos` (making the conditions' photos), :mod:`.records` (predictions per photo and the
record store), :mod:`.models`, :mod:`.utkface` and :mod:`.lfw` (the two parts), :mod:`.summary`
(metrics), :mod:`.run` (the entry point) and :mod:`.report` (JSON and markdown).

>>> # result = run_attribute_benchmark(AttributeSettings(limit=20, lfw_limit=2))
>>> # write_report(result, Path("docs/results/attribute_benchmark.json"),
>>> #              Path("docs/BENCHMARKS.md"))
"""

from evaluation.attributes.conditions import ALL_CONDITIONS, CONDITIONS
from evaluation.attributes.report import write_report
from evaluation.attributes.run import run_attribute_benchmark
from evaluation.attributes.settings import AttributeSettings

__all__ = [
    "ALL_CONDITIONS", "CONDITIONS", "AttributeSettings", "run_attribute_benchmark", "write_report",
]

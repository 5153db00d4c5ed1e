"""Robustness of OPOM universal masks on LFW: transforms, purifiers, matching directions,
verification, the mask-estimation attack and the per-photo baseline.

The identities, photo split (10 training photos, 5 probes), distractor gallery, leave-one-out
folds and optimiser settings are those of :mod:`evaluation.opom` (convex subspace, mode
``fast`` unless told otherwise). Per identity and fold, one universal mask is learned from the 10
training photos by the fold's surrogates (:func:`cloak.opom.learn_mask`), and the fold's tested
black boxes are run on:

1. transforms (:data:`TRANSFORMS`): each probe is protected (:func:`cloak.opom.protect_photo` on
   its central face), rounded to 8 bits, transformed (:mod:`evaluation.transforms`: JPEG 95 / 85
   / 75 / 50, bicubic down-and-up 0.5x / 0.25x, Gaussian blur sigma 1), detected and aligned
   again (MTCNN, the face nearest the photo centre) and searched in the person's other CLEAN
   probes + the distractors. ``jitter``: the five landmarks found again are each moved by
   ``U[-jitter_px, jitter_px]`` photo pixels per coordinate (seeded per person and probe, the
   same offsets on the clean and the protected photo) before alignment, as a less precise
   detector would. The same transforms are run on the clean probes, so the table shows what a
   transform does on its own. ``none`` on protected probes is the OPOM benchmark's condition.
2. purifiers (:data:`PURIFIERS`): median 3 x 3, bilateral (OpenCV's tutorial setting), JPEG 30,
   applied like the transforms.
3. matching directions (:mod:`evaluation.verification`): protected probe vs clean gallery (=
   ``protected/none``), clean probe vs a gallery of the person's other probes protected, and
   protected vs protected.
4. verification: thresholds per black box at each FAR of ``fars``,
   calibrated on all unordered pairs of clean distractor photos (2,679 different people: 3.6
   million impostor pairs); a genuine pair is (probe ``i`` protected, probe ``j != i`` clean);
   protection rate = share of genuine pairs rejected, beside the clean false-reject rate (probe
   ``i`` clean, probe ``j`` clean) at the same threshold.
5. mask estimation (:mod:`evaluation.mask_attacks`): the attacker holds the first ``k`` of the
   person's 10 training photos protected (k in ``ks``), detects and aligns
   each, estimates the mask as the mean residual after each denoiser, subtracts it from each
   protected probe's aligned frame (the ``none`` re-detection) and searches it. The control runs
   the same attack with the CLEAN training photos on the clean probes. The correlation of each
   estimate with the true frame-space mask (feathered as pasted) is recorded, and an oracle
   subtracts the true mask itself (the most an estimate could achieve).
6. per-photo baseline (Fawkes / LowKey style): for each probe its own mask, learned by the same
   surrogates with the same settings from that one photo (``learn_mask([training_face(probe)])``),
   pasted like the universal one. Seconds per protected photo: baseline = learn + paste; universal
   = learn / n_train + paste (amortised over the training photos) and paste alone (the mask
   exists), timed in the same run on the same machine.

Masks are stored as numpy ``.npy`` float32 (``allow_pickle=False``) with a JSON sidecar (the
photos that learned them, the surrogates, the learning seconds) under
``cache_dir/masks/<digest>/<person>__<fold>[__<probe>].npy``
(:class:`evaluation.store.MaskStore`, shared with the OPOM benchmark), the digest covering the
optimiser settings and the weights of the detector and every white box, so reruns with other
conditions reuse them. Finished identities (ranks, genuine pair scores, correlations, timings; no
features, no masks) are stored by :class:`evaluation.store.RecordStore` under
``cache_dir/robustness/runs/<digest>/<person>.json``, so an interrupted run resumes.

Modules: :mod:`~evaluation.robustness.settings` (:class:`RobustnessSettings` with ``fars``, ``ks``,
:data:`TRANSFORMS`, :data:`PURIFIERS`), :mod:`~evaluation.robustness.views` (what the
attacker's detector sees after a transform), :mod:`~evaluation.robustness.identity` (one person),
:mod:`~evaluation.robustness.run`, :mod:`~evaluation.robustness.summary`,
:mod:`~evaluation.robustness.report`.

>>> # result = run_robustness(RobustnessSettings(BenchmarkSettings(limit=2, loo="one")))
>>> # write_report(result, Path("docs/results/robustness.json"), Path("docs/BENCHMARKS.md"))
"""

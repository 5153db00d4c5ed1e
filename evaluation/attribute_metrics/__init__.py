"""Attribute leakage: how well sex, race and age predictors still work on protected faces.

The benchmark compares attribute predictors (:mod:`attackers.attributes`) on faces that are
clean, wear a synthetic physical mask, are cloaked, or both, as in Seneviratne et al., "Does a
Face Mask Protect my Privacy?" (AJCAI 2021). Two settings:

- labelled faces (UTKFace, labels in the file names, :func:`parse_utkface_name`): sex, race and
  7-bin age accuracy and the age MAE, each beside its baseline on the same labels (majority-class
  share; the MAE of always guessing the median label age);
- unlabelled faces (LFW): the predictions on the clean photos are the reference, and we report
  how often the predicted class flips and the mean absolute shift of the predicted age.

Predicted classes: male when ``sex_male_prob >= 0.5``; race and age bin by argmax (or
:func:`age_bin` of ``age_years``).

Normalised predictability puts the attributes on one scale, 0 = baseline, 1 = perfect:
``(accuracy - chance) / (1 - chance)`` for classes and ``1 - MAE / baseline_MAE`` for age. It is
not clipped: a value below 0 means worse than the baseline (for instance a predictor that says
"male" for every face of a female-majority set). It is NaN where the baseline is perfect (one
class only, or one age only). The privacy vulnerability index (PVI) is a weighted mean of
``max(0, predictability)`` over sex, race and age (equal weights by default), in [0, 1]; age
enters through the MAE, which uses the whole error and not only bin hits.

Intervals are percentile bootstrap over faces: each replicate draws the N faces with replacement
(``numpy.random.default_rng(seed)``) and recomputes the statistic and its baseline on the drawn
faces (faces without the label, such as UTKFace names without race, are drawn but not counted).
The draws depend only on (N, n_boot, seed), so metrics of one condition made with one seed
resample the same faces, and the PVI interval combines them face by face. Replicates whose
statistic is undefined (only one class drawn, so chance is 1) are dropped. Because of the
``max(0, .)``, a PVI near 0 has its interval's low end at 0. Memory is O(n_boot x N) float64.

Modules by concern: :mod:`.labels` (UTKFace names, age bins, predicted classes),
:mod:`.bootstrap` (draws and intervals), :mod:`.scores` (labelled accuracies and the age MAE),
:mod:`.pvi` (the index), :mod:`.flips` (changes against the reference predictions) and
:mod:`.report` (:func:`~evaluation.attribute_metrics.report.attribute_report`: all of one
predictor on one condition).

>>> import numpy as np
>>> from evaluation.attribute_metrics.labels import age_bin, parse_utkface_name
>>> parse_utkface_name("26_1_2_20170116174525125.jpg.chip.jpg")
UtkLabels(age=26, male=False, race=2)
>>> age_bin(np.array([3, 4, 12, 13, 61])).tolist()
[0, 1, 1, 2, 6]
"""


"""The OPOM benchmark on LFW: how often black-box recognizers fail to find a protected person.

For each identity of ``lfw/identities`` (sorted), the first 10 photos with a face learn a mask and
the next 5 are probes (:func:`evaluation.protocol.lfw.split_person`; an identity with fewer usable
photos is skipped and listed). Each condition (:mod:`evaluation.opom.conditions`: clean, noise, the
OPOM subspaces, per-probe refinement, the objective ablations) protects the probes through the
shipped path, rounded to 8 bits, detected and aligned again
(:mod:`evaluation.protocol.recognition`); each black-box recognizer of the leave-one-out folds
(:mod:`evaluation.protocol.folds`) searches them in a gallery of the person's other clean probes and
all distractors (:mod:`evaluation.protocol.gallery`). PSR@1 and PSR@5
(:mod:`evaluation.protocol.ranks`) are reported per recognizer and averaged over recognizers, with
percentile-bootstrap intervals over identities; a probe in which no face is
found again counts as protected and is counted in ``undetected``. Also measured: PSNR, SSIM and
L-inf of each protected photo (:mod:`cloak.quality`), seconds to learn a mask, to protect a
photo and to detect faces, wall seconds per identity.

Modules: :mod:`~evaluation.opom.settings` (what runs), :mod:`~evaluation.opom.conditions`,
:mod:`~evaluation.opom.identity` (one person), :mod:`~evaluation.opom.run`
(:func:`~evaluation.opom.run.run_benchmark`, resuming from a
:class:`~evaluation.store.RecordStore`), :mod:`~evaluation.opom.summary`,
:mod:`~evaluation.opom.report` (:func:`~evaluation.opom.report.write_report`).

>>> # result = run_benchmark(BenchmarkSettings(limit=3, loo="one", mode="fast"))
>>> # write_report(result, Path("results/opom_benchmark.json"), Path("docs/BENCHMARKS.md"))
"""

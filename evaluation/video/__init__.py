"""The video benchmark: speed, mask placement and protection of ``cloak video`` on real faces.

Clips (:mod:`evaluation.video_clips`): for each pair of LFW identities (sorted, the first
``people``), a clip of ``seconds`` at ``fps`` and ``size`` in which the two cross each other and a
stranger (a distractor photo) drifts in a corner, H.264 at CRF 18 with an AAC tone. Every frame is
a real photo resampled, so the ground truth (who is where, each frame) is known.

Per identity, the OPOM split (:func:`~evaluation.protocol.split_photos`): the first 10 photos with
a face learn the mask (photo enrolment, :data:`cloak.opom.MODES` preset, default ``fast``) and are
the reference photos that name the person's track; the next 5 are probes, and the clip shows
probe 0, so nothing in the clip was learned from. Leave-one-out: a recognizer is never tested on
a mask it helped make; the default fold ``fast`` learns with the fast preset's surrogates
(facenet, dlib-resnet) and tests sface, mobilefacenet and faceres; ``--loo`` takes the OPOM
benchmark's plans instead (:data:`~evaluation.protocol.folds.FOLD_PLANS`).

Measured, per clip and fold (:func:`cloak.video.protect.protect_video`, the shipped path):

- speed: frames per second of the whole run (decode, detect, track, paste, encode), its ratio to
  real time, and CPU milliseconds per frame;
- placement (:func:`~evaluation.video.placement.mask_assignment`): per frame and enrolled
  person in view, whether a mask of that person lies on their face (landmarks within a
  quarter of the face width of the truth);
  frames with a mask on anyone else (the other person, the stranger, or nobody) are counted
  apart and must be 0;
- protection: every ``eval_every``-th frame of the written file is decoded; around each enrolled
  person's true face the attacker runs MTCNN (on a crop of three face widths: a detector that
  finds the face, as a real attacker's would), aligns and embeds the face with each tested
  black-box recognizer and searches the OPOM gallery: the person's other clean probes (1-4) +
  all distractors (:func:`~evaluation.protocol.gallery.distractor_features`). Per-frame PSR@1 =
  share of face-frames whose identity is not the top match (no face found counts as protected,
  as in the photo benchmark). Per-track PSR@1: the attacker averages the features of a track's
  evaluated frames into one query (the strongest simple attack on a video). The same for the
  unprotected clip (clean), and the photo PSR@1 of the same people with the same masks on their
  5 probe photos (:func:`cloak.opom.protect_photo`, rounded to 8 bits, re-detected).

Masks are cached as ``.cloak`` files under ``cache_dir/video-masks/<settings digest>/``
(:class:`evaluation.store.CloakMaskStore`; no features are written), so a rerun with the same
settings only re-measures.

Modules: :mod:`~evaluation.video.settings`, :mod:`~evaluation.video.people` (the enrolled people
and their masks), :mod:`~evaluation.video.placement`, :mod:`~evaluation.video.attacker`,
:mod:`~evaluation.video.run`, :mod:`~evaluation.video.summary`, :mod:`~evaluation.video.report`.

>>> # result = run_video_benchmark(VideoBenchmarkSettings(people=2, seconds=2))
>>> # write_report(result, Path("video.json"), Path("docs/BENCHMARKS.md"), "...", "video")
"""

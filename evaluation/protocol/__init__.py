"""The LFW identification protocol every benchmark shares (OPOM, Zhong & Deng, TPAMI 2022).

- :mod:`~evaluation.protocol.lfw`: the LFW folder, usable photos (a face found) and each person's
  training/probe split;
- :mod:`~evaluation.protocol.folds`: the black-box recognizers, the white-box surrogates and the
  leave-one-out folds that pair them, and loading both;
- :mod:`~evaluation.protocol.recognition`: a protected photo as the attacker sees it (pasted,
  rounded to 8 bits, found again by MTCNN) and embedded;
- :mod:`~evaluation.protocol.gallery`: the distractor gallery's features, cached;
- :mod:`~evaluation.protocol.ranks`: galleries per probe, identity ranks, PSR@k and bootstrap
  intervals.
"""

"""Video: protect the known people of videos (``cloak video``), enrol a person from a video.

Light on import (no PyAV, no torch). The modules:

- :mod:`cloak.video.io`: probe, decode (batches or frame by frame), re-encode with the source's
  timing, rotation, colour tags and audio;
- :mod:`cloak.video.tracks`: strided face detection, track linking, landmark smoothing, one
  identity per track;
- :mod:`cloak.video.protect`: the two passes (analyse, render) of one video;
- :mod:`cloak.video.paste`: masks pasted into 8-bit frames through each face's alignment;
- :mod:`cloak.video.engine`: many videos, in this process or on a Dask cluster;
- :mod:`cloak.video.enrol`: list a video's face tracks, learn a mask from one;
- :mod:`cloak.video.overlap`: helper threads that overlap decoding and encoding with work.

>>> # from cloak.video.io import probe, read_frames, VideoWriter
>>> # info = probe("clip.mp4")
>>> # with VideoWriter("clip.cloaked.mp4", info) as out:
>>> #     for batch in read_frames(info.path):
>>> #         out.write(batch.frames, batch.pts)
"""

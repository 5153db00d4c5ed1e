"""Video: protect the known people of videos (``cloak video``), enrol a person from a video.

Light on import (no PyAV, no torch). The modules:

- :mod:`cloak.video.container`: open and describe a video file (size, frames, timing,
  rotation, codecs); :class:`~cloak.video.container.VideoError`;
- :mod:`cloak.video.reading`: decode (batches or frame by frame), turn frames upright and back;
- :mod:`cloak.video.writing`: re-encode with the source's timing, rotation, colour tags and
  audio;
- :mod:`cloak.video.detection`: strided face detection (and embedding);
- :mod:`cloak.video.tracks`: track linking, landmark smoothing, one identity per track;
- :mod:`cloak.video.protect`: the two passes (analyse, render) of one video;
- :mod:`cloak.video.paste`: masks pasted into 8-bit frames through each face's alignment;
- :mod:`cloak.video.engine`: many videos, in this process or on a Dask cluster;
- :mod:`cloak.video.inputs`: the videos and reference photos of a run, where outputs go;
- :mod:`cloak.video.enroll`: list a video's face tracks, learn a mask from one (``cloak enroll
  --from-video``);
- :mod:`cloak.video.overlap`: helper threads that overlap decoding and encoding with work.

>>> # from cloak.video.container import probe
>>> # from cloak.video.reading import read_frames
>>> # from cloak.video.writing import VideoWriter
>>> # info = probe("clip.mp4")
>>> # with VideoWriter("clip.cloaked.mp4", info) as out:
>>> #     for batch in read_frames(info.path):
>>> #         out.write(batch.frames, batch.pts)
"""

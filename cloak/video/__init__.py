"""Video: probe, decode to batches of RGB frames, re-encode with the source's timing and audio.

Light on import (no PyAV, no torch): :mod:`cloak.video.io` holds the reader and the writer.

>>> # from cloak.video.io import probe, read_frames, VideoWriter
>>> # info = probe("clip.mp4")
>>> # with VideoWriter("clip.cloaked.mp4", info) as out:
>>> #     for batch in read_frames(info.path):
>>> #         out.write(batch.frames, batch.pts)
"""

"""Face detectors of the zoo (today MTCNN), loaded through :func:`attackers.load`."""

"""``cloak serve``: a local web page that protects a person's photos without the command line.

The page (package data in ``static/``) uploads photos, starts ``cloak protect``'s pipeline with
its default settings and polls its progress, then shows before/after pairs, each photo's
outcome and recognizer verdicts in plain words and links to the protected photos (a zip) and
the mask file.

- :mod:`~cloak.web.uploads`: a streaming multipart receiver that writes each uploaded file
  straight into its session's private folder, refusing files over the size limits;
- :mod:`~cloak.web.sessions`: one private folder per browser session (random id in a cookie),
  the uploads checked by content with :func:`cloak.imageio.read_photo`, the state the page
  shows; :class:`~cloak.web.sessions.SessionStore` removes every folder on exit;
- :mod:`~cloak.web.jobs`: a protection run of :func:`cloak.photos.protect` in a child process,
  then the check of its copies against the uploads (:func:`cloak.report.check_run`, as
  ``cloak protect --report`` checks), its progress relayed to the page;
- :mod:`~cloak.web.verdicts`: the check's verdicts in plain words ("3 of 4 recognizers
  fooled", a summary line);
- :mod:`~cloak.web.files`: previews (PNG) and the zip of protected photos;
- :mod:`~cloak.web.app`: the Starlette routes and the uvicorn server. Only this module imports
  Starlette and uvicorn (the ``web`` extra), and only :mod:`cloak.cli.serve` imports it, when
  the command runs, so ``cloak --help`` works without the extra.

Check results: each per-photo result of ``/api/state`` has a ``"check"`` field
(:func:`~cloak.web.verdicts.photo_verdict`, None until checked or for a photo without a copy)
that ``renderCheck`` in ``static/app.js`` shows in the pair's ``.check-verdict`` element; the
state's ``"check"`` (:func:`~cloak.web.verdicts.check_summary`) fills the "Check results"
section.

Privacy: uploaded photos, previews and results live only in the session's folder (mode 0700)
and are deleted with the session; file names are shown on the page but never used as paths
and never logged.
"""

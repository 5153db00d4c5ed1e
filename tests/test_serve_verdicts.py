"""The page's words for the check's verdicts (:mod:`cloak.web.verdicts`); the verdicts of a real
run on the page are the browser test's (test_serve_browser.py)."""

from __future__ import annotations

from cloak.web.verdicts import check_summary, photo_verdict


def test_photo_verdict() -> None:
    verdict = photo_verdict({"sface": True, "mobilefacenet": False, "faceres": True})
    assert verdict == {"line": "2 of 3 recognizers fooled",
                       "recognizers": [{"name": "sface", "fooled": True},
                                       {"name": "mobilefacenet", "fooled": False},
                                       {"name": "faceres", "fooled": True}]}
    assert photo_verdict({"sface": False})["line"] == "0 of 1 recognizer fooled"


def test_check_summary() -> None:
    check = {"note": "what it means", "photos": {"a.jpg": {"sface": True, "faceres": True},
                                                 "b.jpg": {"sface": True, "faceres": False}}}
    assert check_summary(check) == {
        "summary": "1 of 2 protected photos fooled every recognizer checked (photos fooled per "
                   "recognizer: sface 2 of 2, faceres 1 of 2).",
        "note": "what it means"}
    failed = {"note": "No recognizer verdicts: the check failed (x).", "photos": None}
    assert check_summary(failed) == {"summary": "No recognizer verdicts.",
                                     "note": "No recognizer verdicts: the check failed (x)."}

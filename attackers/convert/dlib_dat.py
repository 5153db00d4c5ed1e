"""Reader for dlib's binary serialisation of DNN layer stacks (``.dat`` files).

dlib writes a network as its C++ type dictates (``dlib/dnn/core.h``): every ``add_layer`` writes a
version number, then its sub-network, then its layer details, flags and cached tensors, so the
layers appear outermost first in the version numbers and innermost first in the details. Tags
and skips write only a version, and neither writes its id: like dlib itself, this reader needs the
network's type to read a file, given as a :class:`LayerSpec` list (outermost layer first).

Primitive encodings (``dlib/serialize.h``, ``dlib/dnn/tensor.h``):

- integers: a control byte (bit 7 = negative, bits 0-3 = byte count, bits 4-6 reserved = 0) and
  the absolute value in that many little-endian bytes;
- floats and doubles: mantissa then exponent as integers, value = mantissa * 2**exponent;
- bools: the ASCII byte ``'1'`` or ``'0'``; strings: an integer length and the bytes;
- tensors (version 2): version, num_samples, k, nr, nc as integers, then little-endian float32;
- alias tensors (version 1): version and the four dimensions, no data.

Every version string, flag and dimension is checked; anything unexpected raises
:class:`DlibFormatError` naming the file, the byte offset and the layer.

>>> stack = [LayerSpec("relu"), LayerSpec("input_rgb_image_sized", size=150)]
>>> # layers = read_stack("net.dat", stack)  # -> [ParsedLayer("relu", {}), ...]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DlibFormatError", "LayerSpec", "ParsedLayer", "Reader", "read_stack"]


class DlibFormatError(ValueError):
    """A dlib ``.dat`` file does not hold what the expected network type says it should."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the expected network type, as in dlib's template.

    Attributes:
        kind: ``loss_metric``, ``fc``, ``con``, ``affine``, ``relu``, ``max_pool``,
            ``avg_pool``, ``add_prev``, ``tag``, ``skip`` or ``input_rgb_image_sized``.
        filters: output channels (``con``) or outputs (``fc``).
        window: square filter or pooling window side; 0 pools over the whole input.
        stride: filter or pooling stride.
        size: image side of ``input_rgb_image_sized``.
        bias: whether an ``fc`` layer has a bias (``fc`` vs ``fc_no_bias``).
    """

    kind: str
    filters: int = 0
    window: int = 0
    stride: int = 1
    size: int = 0
    bias: bool = True

    @property
    def padding(self) -> int:
        """dlib's default padding for ``con`` and pooling: ``window // 2`` at stride 1, else 0."""
        return self.window // 2 if self.stride == 1 else 0


@dataclass
class ParsedLayer:
    """A layer read from the file: its kind and its parameters as float32 arrays."""

    kind: str
    params: dict[str, np.ndarray] = field(default_factory=dict)


class Reader:
    """Sequential reader of dlib's primitive encodings over an in-memory file.

    Args:
        data: the file's bytes.
        source: name used in error messages (the file path).
    """

    def __init__(self, data: bytes, source: str) -> None:
        self.data = memoryview(data)
        self.source = source
        self.pos = 0
        self.context = "header"

    def fail(self, reason: str) -> DlibFormatError:
        """An error naming the file, the byte offset and the layer being read."""
        return DlibFormatError(f"{self.source}: byte {self.pos} ({self.context}): {reason}")

    def take(self, count: int) -> memoryview:
        """The next ``count`` raw bytes."""
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail(f"truncated: wanted {count} bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def read_int(self) -> int:
        """A signed or unsigned integer in dlib's variable-length format."""
        control = self.take(1)[0]
        if control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        size = control & 0x0F
        if size > 8:
            raise self.fail(f"integer of {size} bytes")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def read_float(self) -> float:
        """A float or double: mantissa and exponent integers."""
        mantissa, exponent = self.read_int(), self.read_int()
        if abs(exponent) > 1100:
            raise self.fail(f"non-finite or out-of-range float (exponent {exponent})")
        return math.ldexp(mantissa, exponent)

    def read_bool(self) -> bool:
        """A bool: the ASCII byte '1' or '0'."""
        byte = self.take(1)[0]
        if byte not in (0x30, 0x31):
            raise self.fail(f"bad bool byte 0x{byte:02x}")
        return byte == 0x31

    def read_string(self) -> str:
        """A length-prefixed byte string, decoded as ASCII."""
        length = self.read_int()
        try:
            return bytes(self.take(length)).decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("non-ASCII string") from None

    def expect_version(self, expected: int | str | Sequence[int]) -> int | str:
        """Read an integer (or string) version and check it; returns it."""
        if isinstance(expected, str):
            got: int | str = self.read_string()
            ok = got == expected
        else:
            got = self.read_int()
            ok = got in ((expected,) if isinstance(expected, int) else tuple(expected))
        if not ok:
            raise self.fail(f"unexpected version {got!r}, expected {expected!r}")
        return got

    def expect_int(self, name: str, expected: int) -> None:
        """Read an integer setting and check it equals ``expected``."""
        got = self.read_int()
        if got != expected:
            raise self.fail(f"{name} is {got}, expected {expected}")

    def read_tensor(self) -> np.ndarray:
        """A ``resizable_tensor`` (version 2).

        Returns:
            float32 array of shape (num_samples, k, nr, nc).
        """
        self.expect_version(2)
        shape = tuple(self.read_int() for _ in range(4))
        count = math.prod(shape)
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor`` (version 1): only its shape (num_samples, k, nr, nc)."""
        self.expect_version(1)
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return n, k, nr, nc

    def at_end(self) -> None:
        """Check that the whole file was consumed."""
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} unread bytes after the network")


def _split(reader: Reader, params: np.ndarray, shapes: Sequence[tuple[int, ...]],
           ) -> list[np.ndarray]:
    """Cut a flat parameter tensor into consecutive blocks of the given shapes."""
    flat = params.reshape(-1)
    need = sum(math.prod(s) for s in shapes)
    if flat.size != need:
        raise reader.fail(f"parameter tensor holds {flat.size} values, layout needs {need}")
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out


def _expect_window(r: Reader, spec: LayerSpec) -> None:
    """The window, stride and padding fields that dlib's con_ and pool layers share."""
    r.expect_int("nr", spec.window)
    r.expect_int("nc", spec.window)
    r.expect_int("stride_y", spec.stride)
    r.expect_int("stride_x", spec.stride)
    r.expect_int("padding_y", spec.padding)
    r.expect_int("padding_x", spec.padding)


def _read_con(r: Reader, spec: LayerSpec) -> dict[str, np.ndarray]:
    r.expect_version("con_4")
    params = r.read_tensor()
    r.expect_int("num_filters", spec.filters)
    _expect_window(r, spec)
    filters_shape, biases_shape = r.read_alias(), r.read_alias()
    if filters_shape[0] != spec.filters or filters_shape[2:] != (spec.window, spec.window):
        raise r.fail(f"filter shape {filters_shape} does not match {spec}")
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.read_float()
    weight, bias = _split(r, params, [filters_shape, (spec.filters,)])
    if math.prod(biases_shape) != spec.filters:
        raise r.fail(f"bias shape {biases_shape} does not match {spec.filters} filters")
    return {"weight": weight, "bias": bias}


def _read_affine(r: Reader, spec: LayerSpec) -> dict[str, np.ndarray]:
    r.expect_version("affine_")
    params = r.read_tensor()
    gamma_shape, beta_shape = r.read_alias(), r.read_alias()
    mode = r.read_int()
    if mode != 0 or gamma_shape != beta_shape:  # 0 = CONV_MODE: one scale/shift per channel
        raise r.fail(f"expected a per-channel affine layer, got mode {mode}, "
                     f"shapes {gamma_shape} / {beta_shape}")
    channels = math.prod(gamma_shape)
    gamma, beta = _split(r, params, [(channels,), (channels,)])
    return {"weight": gamma, "bias": beta}


def _read_fc(r: Reader, spec: LayerSpec) -> dict[str, np.ndarray]:
    r.expect_version("fc_2")
    r.expect_int("num_outputs", spec.filters)
    num_inputs = r.read_int()
    params = r.read_tensor()
    weights_shape, biases_shape = r.read_alias(), r.read_alias()
    r.expect_int("bias_mode", 0 if spec.bias else 1)  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    for _ in range(4):
        r.read_float()
    if weights_shape != (num_inputs, spec.filters, 1, 1):
        raise r.fail(f"weight shape {weights_shape} does not match "
                     f"{num_inputs} inputs x {spec.filters} outputs")
    shapes = [(num_inputs, spec.filters)] + ([(spec.filters,)] if spec.bias else [])
    blocks = _split(r, params, shapes)
    out = {"weight": np.ascontiguousarray(blocks[0].T)}  # dlib computes x @ W: torch wants W.T
    if spec.bias:
        if math.prod(biases_shape) != spec.filters:
            raise r.fail(f"bias shape {biases_shape} does not match {spec.filters} outputs")
        out["bias"] = blocks[1]
    return out


def _read_pool(r: Reader, spec: LayerSpec) -> dict[str, np.ndarray]:
    r.expect_version(f"{spec.kind}_2")
    _expect_window(r, spec)
    return {}


def _read_loss_metric(r: Reader, spec: LayerSpec) -> dict[str, np.ndarray]:
    r.expect_version("loss_metric_2")
    margin, distance_threshold = r.read_float(), r.read_float()
    return {"margin": np.float32([margin]), "distance_threshold": np.float32([distance_threshold])}


def _read_input_rgb(r: Reader, spec: LayerSpec) -> dict[str, np.ndarray]:
    r.expect_version("input_rgb_image_sized")
    mean = np.float32([r.read_float(), r.read_float(), r.read_float()])
    r.expect_int("nr", spec.size)
    r.expect_int("nc", spec.size)
    return {"mean": mean}


def _read_version_only(name: str) -> Callable[[Reader, LayerSpec], dict[str, np.ndarray]]:
    def read(r: Reader, spec: LayerSpec) -> dict[str, np.ndarray]:
        r.expect_version(name)
        return {}
    return read


_DETAILS: dict[str, Callable[[Reader, LayerSpec], dict[str, np.ndarray]]] = {
    "con": _read_con,
    "affine": _read_affine,
    "fc": _read_fc,
    "relu": _read_version_only("relu_"),
    "add_prev": _read_version_only("add_prev_"),
    "max_pool": _read_pool,
    "avg_pool": _read_pool,
}


def _read_layer_state(r: Reader, version: int, on_input: bool) -> None:
    """The bookkeeping an ``add_layer`` writes after its details: flags and cached tensors."""
    for _ in range(3):  # setup called, gradient stale, output/gradient getters disabled
        r.read_bool()
    r.read_tensor()  # x_grad
    r.read_tensor()  # cached_output
    if on_input:
        r.read_tensor()  # grad_final
        if version >= 3:
            r.read_int()  # sample expansion factor
    elif version == 2:
        r.read_tensor()  # params_grad


def read_stack(path: str | Path, stack: Sequence[LayerSpec]) -> list[ParsedLayer]:
    """Read a dlib network of type ``stack`` from a ``.dat`` file.

    Args:
        path: the ``.dat`` file.
        stack: the network type, outermost layer first: an optional ``loss_*`` layer, then
            computational layers, tags and skips, and last an input layer.

    Returns:
        One :class:`ParsedLayer` per entry of ``stack``, in the same order.

    Raises:
        DlibFormatError: the file does not hold a network of this type (message names the file,
            byte offset and layer), or has bytes left over.
    """
    path = Path(path)
    if not stack or stack[-1].kind != "input_rgb_image_sized":
        raise ValueError("stack must end with an input_rgb_image_sized layer")
    reader = Reader(path.read_bytes(), str(path))
    parsed = [ParsedLayer(spec.kind) for spec in stack]

    # The stack nests: each layer's record wraps the records of everything after it. Walk down
    # reading what precedes the sub-network, then back up reading what follows it.
    versions: list[int] = []
    for i, spec in enumerate(stack[:-1]):
        reader.context = f"layer {i} ({spec.kind})"
        if spec.kind == "loss_metric":
            if i != 0:
                raise ValueError("a loss layer can only be outermost")
            reader.expect_version(1)
            parsed[i].params = _read_loss_metric(reader, spec)
            versions.append(1)
        elif spec.kind in ("tag", "skip"):
            versions.append(int(reader.expect_version(1)))
        elif spec.kind in _DETAILS:
            on_input = i == len(stack) - 2
            versions.append(int(reader.expect_version((2, 3) if on_input else (1, 2))))
        else:
            raise ValueError(f"unsupported layer kind {spec.kind!r}")

    reader.context = f"layer {len(stack) - 1} (input_rgb_image_sized)"
    parsed[-1].params = _read_input_rgb(reader, stack[-1])
    for i in range(len(stack) - 2, -1, -1):
        spec = stack[i]
        if spec.kind not in _DETAILS:
            continue
        reader.context = f"layer {i} ({spec.kind})"
        parsed[i].params = _DETAILS[spec.kind](reader, spec)
        _read_layer_state(reader, versions[i], on_input=i == len(stack) - 2)
    reader.context = "end of file"
    reader.at_end()
    return parsed

"""cloak.device and ``--device``: resolution, usage errors, and CPU runs unchanged by the flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import zero_mask_file

from cloak.cli import main
from cloak.device import DEVICES, DeviceError, module_device, resolve_device
from cloak.mask import load_mask
from cloak.masking import LearnSettings

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")


@no_cuda
def test_auto_is_the_cpu_without_cuda() -> None:
    assert resolve_device("auto") == torch.device("cpu")


def test_named_devices_resolve() -> None:
    assert DEVICES == ("auto", "cpu", "cuda", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
        assert resolve_device("cuda:0") == torch.device("cuda:0")


@pytest.mark.parametrize("name", ["tpu", "cpu:0", "cuda:x", ""])
def test_unknown_devices_are_refused(name: str) -> None:
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(name)


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_names_the_device(name: str) -> None:
    with pytest.raises(DeviceError, match=f"device '{name}' is not available: torch sees no "
                                          "CUDA device"):
        resolve_device(name)


def test_mps_without_mps_names_the_device() -> None:
    if torch.backends.mps.is_available():
        pytest.skip("an MPS backend is present")
    with pytest.raises(DeviceError, match="device 'mps' is not available"):
        resolve_device("mps")


def test_module_device() -> None:
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.Identity()) == torch.device("cpu")


def test_device_is_not_a_mask_setting() -> None:
    """Masks learned on any device are the same mask: the device changes no optimiser setting
    (the settings a mask records come from ``resolve()`` and the mode)."""
    assert LearnSettings(device="cuda").resolve() == LearnSettings().resolve()


@pytest.mark.parametrize("command", ["protect", "enroll", "video"])
def test_every_command_lists_device(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "--device auto|cpu|cuda|mps" in result.output


@no_cuda
@pytest.mark.parametrize("command", ["protect", "enroll", "video"])
def test_cuda_without_cuda_is_a_usage_error(command: str, tmp_path: Path) -> None:
    """``--device cuda`` on a machine without CUDA stops before any work: exit 2, naming it."""
    mask = zero_mask_file(tmp_path / "ada.cloak", "Ada")
    args = {"protect": [str(tmp_path)], "enroll": ["Ada", str(tmp_path)],
            "video": [str(tmp_path), "--mask", str(mask)]}[command]
    result = CliRunner().invoke(main, [command, *args, "--device", "cuda"])
    assert result.exit_code == 2
    assert "Invalid value for '--device': device 'cuda' is not available" in result.output


@pytest.mark.data
@pytest.mark.usefixtures("one_torch_thread")
def test_device_cpu_gives_the_same_bytes_as_no_flag(colin_photos: Path, tmp_path: Path) -> None:
    """``--device cpu`` and the default (auto = the CPU here) write byte-identical protected
    photos and the same mask (the mask files differ only in their creation time); learning,
    refinement and paste all run."""
    if torch.cuda.is_available():
        pytest.skip("auto is CUDA here")
    runner = CliRunner()
    outputs = []
    for name, flag in (("default", []), ("cpu", ["--device", "cpu"])):
        out = tmp_path / name
        result = runner.invoke(main, ["protect", str(colin_photos), "-o", str(out), "--steps", "2",
                                      "--surrogates", "dlib-resnet", "--refine", "1", "--quiet",
                                      *flag])
        assert result.exit_code == 0, result.output
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.iterdir())
                        if p.is_file() and not p.name.startswith(".")})
    default, cpu = outputs
    assert sorted(default) == sorted(cpu) and len(default) == 4  # 3 photos and the mask
    photos = [p for p in default if p.suffix != ".cloak"]
    assert len(photos) == 3 and all(default[p] == cpu[p] for p in photos)
    masks = [load_mask(tmp_path / name / "Colin.cloak") for name in ("default", "cpu")]
    assert masks[0].delta.equal(masks[1].delta) and masks[0].settings == masks[1].settings
    assert "device" not in masks[0].settings

"""ONNX files run by onnxruntime on the CPU: the black-box references of the torch ports.

:class:`OnnxRuntimeNet` is a module without gradients around one ``InferenceSession``. Graph
inputs that are initializers or that no node reads are dropped in memory (SFace lists its stale
float weights as graph inputs), so the only input left is the data. A graph whose batch is fixed
to 1 in the file is run one item at a time.

>>> # net = OnnxRuntimeNet(Path("age-v1.onnx"), threads=1, optimise=False); net(chips)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

__all__ = ["OnnxRuntimeNet"]


def _data_inputs_only(path: str | Path) -> bytes:
    """The serialised ONNX model at ``path`` with its initializer and unread inputs dropped."""
    proto = onnx.load(str(path))
    graph = proto.graph
    used = {i for n in graph.node for i in n.input}
    weights = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name in used and v.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    return proto.SerializeToString()


class OnnxRuntimeNet(nn.Module):
    """An ONNX file (one data input, first output used) run by onnxruntime on the CPU.

    Args:
        path: the ONNX file.
        threads: intra-op threads (0 = onnxruntime's default).
        optimise: apply onnxruntime's graph optimisations (off: the graph runs as stored).

    Raises:
        RuntimeError: onnxruntime cannot load the file (message names it and the reason).
    """

    def __init__(self, path: str | Path, threads: int = 0, optimise: bool = True) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if not optimise:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(_data_inputs_only(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnx and onnxruntime raise their own error types
            raise RuntimeError(f"{path}: onnxruntime cannot load it ({exc})") from None
        (info,) = self.session.get_inputs()
        self.input_name = info.name
        self.batch_one = info.shape[0] == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on ``x`` (any float dtype; used as float32, detached).

        Args:
            x: (N, ...) the graph's input.

        Returns:
            (N, ...) float32, the graph's first output (no gradient).
        """
        data = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
        if self.batch_one:
            return torch.from_numpy(np.concatenate(
                [self.session.run(None, {self.input_name: data[i:i + 1]})[0]
                 for i in range(len(data))]))
        return torch.from_numpy(self.session.run(None, {self.input_name: data})[0])

"""Tests for the cost probes: MACs, latency, ONNX export, peak activation memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from gensynth.cost import (
    LatencyReport,
    UnsupportedOperatorError,
    count_macs,
    count_params,
    export_onnx,
    measure_latency,
    measure_onnx_latency,
    peak_activation_bytes,
)


class ConvLinearNet(nn.Module):
    """3x16x16 -> conv3x3(8) -> bn -> relu -> dwconv3x3/s2 -> pool -> linear(10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU(inplace=True)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(self.act(self.bn(self.conv(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class Blur(nn.Module):
    """Fixed depthwise 3x3 binomial blur held in a buffer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :]) / 16
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel, padding=1, groups=x.shape[1])


class ZooNet(nn.Module):
    """Exercises the element operators the search space produces."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.Hardswish()
        self.maxpool = nn.MaxPool2d(2)
        self.avgpool = nn.AvgPool2d(2)
        self.up = nn.Upsample(size=(16, 16))
        self.blur = Blur(8)
        self.scale = nn.Parameter(torch.ones(1, 8, 1, 1))
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        gate = torch.sigmoid(x) * x + x
        a = self.maxpool(gate)
        b = self.avgpool(gate)
        y = F.interpolate(a + b, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.blur(self.up(y * self.scale))
        z = torch.cat([y, F.hardswish(x)], dim=1)
        return self.head(F.adaptive_avg_pool2d(z, 1).flatten(1))


class CumsumNet(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=1)


def _flop_counter_total(model: nn.Module, shape: tuple[int, int, int]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.randn(1, *shape))
    return counter.get_total_flops()


def test_macs_match_hand_count_and_flop_counter() -> None:
    model = ConvLinearNet()
    conv = 16 * 16 * 8 * 3 * 9
    dw = 8 * 8 * 8 * 9
    fc = 8 * 10
    report = count_macs(model, (3, 16, 16))
    assert report.macs == conv + dw + fc
    assert 2 * report.macs == _flop_counter_total(model, (3, 16, 16))
    assert report.by_module == {"conv": conv, "bn": 0, "act": 0, "dw": dw, "pool": 0, "fc": fc}
    # bn + relu: 1 per element each; adaptive pool: its input elements.
    assert report.other_ops == 2 * 8 * 16 * 16 + 8 * 8 * 8
    assert report.unsupported == {}


def test_count_macs_restores_training_mode() -> None:
    model = ConvLinearNet().train()
    count_macs(model, (3, 16, 16))
    assert model.training and model.bn.training


def test_zoo_ops_are_all_in_the_table() -> None:
    model = ZooNet()
    report = count_macs(model, (3, 16, 16), strict=True)
    stem, blur, head = 16 * 16 * 8 * 27, 16 * 16 * 8 * 9, 16 * 4
    assert report.macs == stem + blur + head
    assert 2 * report.macs == _flop_counter_total(model, (3, 16, 16))
    assert report.by_module["blur"] == blur
    assert report.other_by_module["maxpool"] == 8 * 8 * 8 * 4
    assert report.other_ops > 0
    assert report.unsupported == {}


def test_graph_module_is_counted_like_the_eager_model() -> None:
    model = ZooNet()
    traced = fx.symbolic_trace(model)
    eager, graph = count_macs(model, (3, 16, 16)), count_macs(traced, (3, 16, 16))
    assert (graph.macs, graph.other_ops) == (eager.macs, eager.other_ops)
    assert graph.by_module["stem"] == eager.by_module["stem"]


def test_missing_operator_is_strict_error_or_listed() -> None:
    with pytest.raises(UnsupportedOperatorError, match="aten::cumsum"):
        count_macs(CumsumNet(), (3, 4, 4))
    report = count_macs(CumsumNet(), (3, 4, 4), strict=False)
    assert report.unsupported == {"aten::cumsum": 1}
    assert issubclass(UnsupportedOperatorError, ValueError)


def test_count_params_excludes_buffers() -> None:
    model = ZooNet()
    expected = (8 * 27 + 8) + 8 + (16 * 4 + 4)
    assert count_params(model) == expected


def test_latency_is_positive_and_restores_threads() -> None:
    before = torch.get_num_threads()
    threads = 2 if before != 2 else 1
    report = measure_latency(ConvLinearNet(), (3, 16, 16), runs=5, warmup=1, threads=threads)
    assert torch.get_num_threads() == before
    assert isinstance(report, LatencyReport)
    assert 0 < report.min_ms <= report.median_ms <= report.p90_ms
    assert (report.runs, report.threads, report.backend) == (5, threads, "torch")


def test_onnx_export_and_onnxruntime_latency(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    import onnx

    path = export_onnx(ZooNet(), (3, 16, 16), tmp_path / "zoo.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["logits"]
    report = measure_onnx_latency(path, (3, 16, 16), runs=5, warmup=1)
    assert report.backend == "onnxruntime"
    assert 0 < report.min_ms <= report.median_ms <= report.p90_ms


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 4, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def test_peak_memory_of_a_chain() -> None:
    fp32 = 4
    x, c1, r, c2 = 3 * 16 * 16, 8 * 16 * 16, 8 * 16 * 16, 4 * 8 * 8
    # Live pairs: (x, c1), (c1, r), (r, c2): the peak is conv1's input + output.
    expected = max(x + c1, c1 + r, r + c2) * fp32
    assert peak_activation_bytes(Chain(), (3, 16, 16)) == expected
    assert peak_activation_bytes(fx.symbolic_trace(Chain()), (3, 16, 16)) == expected


def test_peak_memory_keeps_skip_input_alive() -> None:
    # x stays alive across conv for the add: x + conv + sum are live at the add.
    assert peak_activation_bytes(Residual(), (4, 8, 8)) == 3 * 4 * 8 * 8 * 4


class _BlockLeafTracer(fx.Tracer):
    """Keeps ``Residual`` as one ``call_module`` node, as a graph builder would."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, Residual) or super().is_leaf_module(module, qualified_name)


def test_peak_memory_opens_up_graph_module_blocks() -> None:
    model = nn.Sequential(Residual(), nn.ReLU())
    blocks = fx.GraphModule(model, _BlockLeafTracer().trace(model))
    assert [n.op for n in blocks.graph.nodes].count("call_module") == 2
    assert peak_activation_bytes(blocks, (4, 8, 8)) == peak_activation_bytes(model, (4, 8, 8))
    assert peak_activation_bytes(model, (4, 8, 8)) == 3 * 4 * 8 * 8 * 4

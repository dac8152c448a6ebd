"""Cost probes: parameters, MACs, peak activation memory, latency, ONNX export."""

from __future__ import annotations

from gensynth.cost.latency import LatencyReport, measure_latency, measure_onnx_latency
from gensynth.cost.macs import MacReport, UnsupportedOperatorError, count_macs
from gensynth.cost.memory import peak_activation_bytes
from gensynth.cost.onnx_export import export_onnx
from gensynth.cost.params import count_params

__all__ = [
    "LatencyReport",
    "MacReport",
    "UnsupportedOperatorError",
    "count_macs",
    "count_params",
    "export_onnx",
    "measure_latency",
    "measure_onnx_latency",
    "peak_activation_bytes",
]

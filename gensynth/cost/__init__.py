"""Cost probes: parameters, MACs, peak activation memory, latency, ONNX export."""

from __future__ import annotations

from .analytic import graph_macs
from .latency import BACKENDS, LatencyReport, cpu_model, measure_deployed_latency, measure_latency, measure_onnx_latency, resolve_backend, torch_call
from .macs import MacReport, UnsupportedOperatorError, count_macs
from .memory import peak_activation_bytes
from .onnx_export import export_onnx
from .params import count_params

__all__ = [
    "BACKENDS",
    "graph_macs",
    "LatencyReport",
    "MacReport",
    "UnsupportedOperatorError",
    "count_macs",
    "cpu_model",
    "count_params",
    "export_onnx",
    "measure_deployed_latency",
    "measure_latency",
    "measure_onnx_latency",
    "peak_activation_bytes",
    "resolve_backend",
    "torch_call",
]

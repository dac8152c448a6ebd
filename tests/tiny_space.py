"""Helpers shared by the search tests: a tiny copy of the dcac space that searches in seconds."""
from __future__ import annotations

from pathlib import Path

import yaml

from gensynth.space import builtin_spaces

TINY_GENES = {
    "activation": ["relu", "hswish"], "stem.width": [8, 16], "stem.reduce": [2], "col.count": [2, 4],
    "col.depth": [1], "col.width": [8, 16], "col.f_condense": [2, 4], "col.f_ratio": [0.25], "col.f_kernel": [3],
    "col.f_groups": [0], "col.a_condense": [2, 4], "col.a_pool": ["max"], "col.a_ratio": [0.25], "col.a_kernel": [3],
    "col.a_groups": [0], "columns.reduce": [True], "columns.downsample": ["blurpool", "avgpool", "maxpool", "strided_pwconv"],
    "merge.width": [16, 24], "stage.count": [1, 2], "stage.depth": [1], "stage.growth": [1.0, 1.5],
    "stage.downsample": ["blurpool", "avgpool", "strided_conv"], "stage.f_condense": [2, 4], "stage.f_ratio": [0.25],
    "stage.f_kernel": [3], "stage.f_groups": [0], "stage.a_condense": [2, 4], "stage.a_pool": ["max"], "stage.a_ratio": [0.25],
    "stage.a_kernel": [3], "stage.a_groups": [0], "head.width": [32, 64],
}


def write_tiny_space(folder: Path) -> Path:
    """The shipped dcac space with fewer, smaller options (rule-breaking ones kept), at 64 px / 16 px proxy."""
    data = yaml.safe_load(builtin_spaces()["dcac"].read_text())
    for key in ("seed", "seed_genome"):
        data.pop(key, None)
    data.update(name="tiny", deployment={"channels": 3, "resolution": 64, "num_classes": 1000},
                proxy={"resolution": 16, "skip_reductions": 0})
    for name, value in data["genes"].items():
        if isinstance(value, dict):
            value["count"] = TINY_GENES.get(f"{name}.count", value["count"])
            for member in value["genes"]:
                value["genes"][member] = TINY_GENES.get(f"{name}.{member}", value["genes"][member])
        else:
            data["genes"][name] = TINY_GENES.get(name, value)
    path = Path(folder) / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


TINY_PROTOCOL = {
    "training": {"train_images": 64, "val_images": 50, "batch_size": 32},
    "latency": {"runs": 1, "warmup": 0, "backend": "torch"},  # no ONNX export per candidate; tests/test_fast_designs.py times onnxruntime
    "export_onnx": False,
    "report": False,  # ~5 s a run; tests/test_search_cli.py's e2e run writes one
    "workers": 1,  # no worker processes to start (~3 s each) per test search; tests/test_worker_pool.py runs the pool
}


def write_protocol(folder: Path, **extra: object) -> Path:
    """A --config file with the tiny proxy protocol (about a second per candidate), plus ``extra`` options."""
    path = Path(folder) / "protocol.yaml"
    path.write_text(yaml.safe_dump({**TINY_PROTOCOL, **extra}))
    return path


def main_one_thread(args: list[str]) -> int:
    """Run the CLI in-process with one torch thread (the suite shares 2 cores), restoring the setting."""
    import torch

    from gensynth.cli.main import main

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(args)
    finally:
        torch.set_num_threads(before)

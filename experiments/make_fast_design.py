"""Write ``experiments/results/fast_dcac/hand_designed.yaml``: a small, fast `dcac` architecture that keeps rules 1-3.

The AttendNeXt seed's genome with every efficiency choice of the space taken by hand: the
4× anti-aliased stem, four one-unit columns 8 wide with features and attention condensed by 8,
a 32-wide merge, two stages of one DC-AC block each, a 256-wide head, ReLU. It shows what the
space can express (issue 9's target: at most 4.0 M parameters and 2× faster than MobileNetV3-L
in both runtimes); ``gensynth compare`` measures it (docs/benchmarks.md, "Latency searches").

    python experiments/make_fast_design.py
"""
from __future__ import annotations

from pathlib import Path

from gensynth.constraint import Candidate
from gensynth.ir.serialize import save
from gensynth.plugins import instantiate
from gensynth.search.config import DEFAULT_CONSTRAINTS
from gensynth.space import load_space

OUT = Path(__file__).resolve().parent / "results" / "fast_dcac" / "hand_designed.yaml"


def main() -> None:
    space = load_space("dcac")
    genome = {k: v for k, v in space.seed_genome.items() if not k.startswith("stage")}
    genome |= {"stem.reduce": 4, "stem.width": 16, "merge.width": 32, "head.width": 256, "activation": "relu", "stage.count": 2}
    for i in range(genome["col.count"]):
        genome |= {f"col{i}.depth": 1, f"col{i}.width": 8, f"col{i}.unit": "dwsep", f"col{i}.f_condense": 8, f"col{i}.a_condense": 8}
    for j in range(2):
        stage = {k.split(".", 1)[1]: v for k, v in space.seed_genome.items() if k.startswith("stage0.")}
        stage |= {"depth": 1, "growth": 2.0, "shortcut": "none", "f_condense": 4, "a_condense": 4}
        genome |= {f"stage{j}.{k}": v for k, v in stage.items()}
    genome = space.check(genome)
    graph = space.to_graph(genome, "hand-designed-fast-dcac")
    candidate = Candidate(genome, graph, graph.structural_hash())
    for name in DEFAULT_CONSTRAINTS:
        verdict = instantiate(name).check(candidate)
        assert verdict.satisfied, f"{name}: {verdict.reason}"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save(graph, OUT)
    print(f"wrote {OUT} (keeps {', '.join(DEFAULT_CONSTRAINTS)})")


if __name__ == "__main__":
    main()

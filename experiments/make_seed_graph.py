"""Regenerate search_spaces/attendnext_seed.yaml from dcac.yaml's ``seed_genome``.

Run after changing the dcac family or the seed genome:
    python experiments/make_seed_graph.py
tests/test_space.py checks that the shipped file equals what this writes.
"""
from pathlib import Path

from gensynth.ir import save
from gensynth.ir.serialize import read_data_file
from gensynth.space.space import parse_space

ROOT = Path(__file__).resolve().parent.parent / "search_spaces"

if __name__ == "__main__":
    data = read_data_file(ROOT / "dcac.yaml")
    seed_file = data.pop("seed")
    space = parse_space(data, ROOT / "dcac.yaml")
    print(save(space.to_graph(space.seed_genome, name="attendnext-seed"), ROOT / seed_file))

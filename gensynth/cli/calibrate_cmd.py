"""``gensynth calibrate``: judge the inquisitor's probes (proxy protocols, zero-cost proxies, NetScore) against a long reference."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..search.config import MAX_SEED
from .args import integer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="measure how well each probe (proxy protocols, zero-cost proxies, NetScore) ranks architectures against a long reference",
        description="Sample N distinct structurally feasible architectures of a space; train each with a high-fidelity reference "
        "(10x the default protocol's steps, at a resolution nearer deployment, validated on Fashion-MNIST's full test split, several "
        "seeds) and evaluate every probe: each proxy protocol named (with the same seeds), NetScore on its accuracy, the screen "
        "stage's zero-cost proxies and the params and MACs baselines. Reports each probe's Spearman rho and Kendall tau against "
        "the reference's mean top-1, its seed-to-seed rho and its cost per candidate, beside the reference's own seed-to-seed rho "
        "(the ceiling): OUT/calibration.json, calibration.md, calibration.png. Every measurement is appended to "
        "OUT/results.jsonl as it is taken; the same command again skips what is there (see docs/calibration.md).",
    )
    p.add_argument("--space", default="dcac", help="space name or path to a space .yaml (default: dcac)")
    p.add_argument("--n", type=integer(3), default=30, help="architectures to sample, at least 3 (default: 30)")
    p.add_argument("--seed", type=integer(0, MAX_SEED), default=0, help="first sampling seed of the architectures (default: 0)")
    p.add_argument("--holdout-seed", type=integer(0, MAX_SEED), metavar="S",
                   help="also sample a disjoint hold-out set of N architectures from seed S and report its figures separately")
    p.add_argument("--out", type=Path, default=Path("runs/calibrate"), help="output folder, also the cache (default: runs/calibrate)")
    p.add_argument("--protocols", default="default",
                   help="comma-separated proxy protocols to judge: 'default' (always included: SearchConfig()'s training), a config "
                   "file or shipped experiment (its training and data), or key=value[+key=value...] overrides of the default "
                   "(training keys, resolution, skip_reductions, data), e.g. 'default,epochs=4+train_images=2048' (default: default)")
    p.add_argument("--seeds", type=integer(1), default=2,
                   help="training seeds per architecture, for the reference, every protocol and the zero-cost proxies (default: 2)")
    p.add_argument("--reference-seeds", type=integer(2), metavar="N",
                   help="the reference's training seeds alone, to average more of them than the probes' (default: --seeds)")
    p.add_argument("--reference-steps", type=integer(1), metavar="STEPS",
                   help="the reference's optimisation steps (default: 10x the default protocol's, 160)")
    p.add_argument("--reference-val-images", type=integer(1), default=10_000, metavar="IMAGES",
                   help="the reference's validation images, at most the split's (default: 10000, Fashion-MNIST's whole test split)")
    p.add_argument("--reference-data", default="auto", metavar="DATA",
                   help="the reference's dataset: auto (fashion-mnist-full when installed, else the embedded subset), or any --data "
                   "of 'gensynth search' (default: auto)")
    p.add_argument("--resolution", type=integer(8), default=64,
                   help="the reference's input resolution in px (default: 64: total stride 32 leaves 2x2 maps, 1x1 at the proxy's 32)")
    p.add_argument("--threads", type=integer(1), default=1,
                   help="torch intra-op threads for every measurement (default: 1, as a search worker)")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: write the report from what OUT/results.jsonl holds (interim figures of an unfinished "
                   "calibration; each set says how many architectures have a reference)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..calibrate import Settings, calibrate  # torch: only when a calibration runs

    settings = Settings(out=args.out, space=args.space, n=args.n, seed=args.seed, seeds=args.seeds, reference_seeds=args.reference_seeds,
                        protocols=tuple(args.protocols.split(",")), resolution=args.resolution, reference_steps=args.reference_steps,
                        reference_val_images=args.reference_val_images, reference_data=args.reference_data,
                        holdout_seed=args.holdout_seed, threads=args.threads, report_only=args.report_only)
    result, paths = calibrate(settings, command(args), say=lambda line: print(f"gensynth: {line}", file=sys.stderr))
    for set_name, figures in result["sets"].items():
        ceiling = figures["reference"]["seed_rho"]
        print(f"{set_name} set: reference seed-to-seed rho (ceiling) {'–' if ceiling is None else f'{ceiling:.2f}'}")
        for probe, v in figures["probes"].items():
            rho = "–" if v["spearman"] is None else f"{v['spearman']:+.2f}"
            tau = "–" if v["kendall"] is None else f"{v['kendall']:+.2f}"
            print(f"  {probe:28} rho {rho:>5}  tau {tau:>5}  (n {v['n']})")
    if result["failures"]:
        print(f"{len(result['failures'])} failed measurement(s), left out of the statistics (see calibration.md)")
    for path in paths:
        print(f"wrote {path}")
    return 0


def command(args: argparse.Namespace) -> str:
    """The command line that repeats this calibration, every setting spelled out."""
    words = ["gensynth", "calibrate", "--space", args.space, "--n", str(args.n), "--seed", str(args.seed), "--out", str(args.out),
             "--protocols", args.protocols, "--seeds", str(args.seeds), "--reference-val-images", str(args.reference_val_images),
             "--reference-data", args.reference_data, "--resolution", str(args.resolution), "--threads", str(args.threads)]
    words += ["--reference-seeds", str(args.reference_seeds)] if args.reference_seeds else []
    words += ["--reference-steps", str(args.reference_steps)] if args.reference_steps else []
    words += ["--holdout-seed", str(args.holdout_seed)] if args.holdout_seed is not None else []
    words += ["--report-only"] if args.report_only else []
    return shlex.join(words)

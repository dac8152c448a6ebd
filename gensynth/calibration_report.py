"""The report of ``gensynth calibrate``: ``calibration.json``, a Markdown table per set, and the plot."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UserError
from .rank_agreement import mean_of_all


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    """``calibration.json``, ``calibration.md`` and ``calibration.png`` in ``out``."""
    paths = [out / "calibration.json", out / "calibration.md", out / "calibration.png"]
    try:
        paths[0].write_text(json.dumps(result, indent=1) + "\n")
        paths[1].write_text(markdown(result))
        plot(result, paths[2])
    except OSError as err:
        raise UserError(f"--out {out}: cannot write ({err.strerror or err})") from None
    return paths


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """The report: how it was measured, then one table per set."""
    ref = result["reference"]
    t = ref["training"]
    lines = ["# gensynth calibrate", "", f"- **command**: `{result['command']}`", f"- **machine**: {result['machine']}",
             f"- **run time**: {result['seconds']} s this invocation; {result['measured_s']} s of measurements in all (over every "
             "invocation that took them)",
             f"- **architectures**: {result['n']} of space `{result['space']}` from sampling seed {result['seed']}"
             + (f", hold-out set of {result['n']} from seed {result['holdout_seed']}" if result["holdout_seed"] is not None else ""),
             f"- **reference**: {ref['steps']} steps ({t['epochs']} epoch(s) over {ref['train_images']} images, batch {t['batch_size']}, "
             f"AdamW lr {t['lr']:g}) at {ref['resolution']} px on `{ref['data']}`, validated on {ref['val_images']} images, "
             f"seeds {', '.join(map(str, ref['seeds']))}" + (f"; **{ref['note']}**" if ref["note"] else ""),
             ]
    for p in result["protocols"]:
        pt = p["training"]
        lines.append(f"- **protocol `{p['name']}`**: {p['steps']} steps ({pt['epochs']} epoch(s) over {p['train_images']} images, "
                     f"batch {pt['batch_size']}) at {p['resolution']} px on `{p['data']}`, validated on {p['val_images']} images, "
                     f"seeds {', '.join(map(str, p['seeds']))}")
    zc = result["zero_cost"]
    lines += [f"- **zero-cost**: batch {zc['batch_size']} at {zc['adaptation']['resolution']} px, seeds "
              f"{', '.join(map(str, zc['seeds']))}; NetScore α={result['objective']['alpha']:g} β={result['objective']['beta']:g} "
              f"γ={result['objective']['gamma']:g} on deployment params and MACs", "",
              "ρ, τ: Spearman and Kendall (tau-b) of the probe's mean over its seeds against the reference's mean accuracy. "
              "ρ one seed: the mean over seeds of one seed's ρ (what a search that trains once sees). Seed ρ: the probe "
              "against itself over two seeds. Cost: seconds per candidate for one seed. Ceiling: the reference's seed ρ. "
              "Predicted, not measured (Spearman-Brown, from the seed ρ): the reliability of a mean over seeds, the seeds whose "
              "mean would reach 0.9, and ρ attainable, the highest ρ a probe can show against this reference given both means' "
              "reliabilities (√(r probe · r reference)).", ""]
    for name, s in result["sets"].items():
        r = s["reference"]
        lines += [f"## {name} set", "",
                  f"Reference: {s['reference_ok']}/{s['architectures']} architectures measured; seed-to-seed ρ (ceiling) "
                  f"**{_fmt(r['seed_rho'])}**; mean top-1 {_fmt(r['mean_accuracy'])} %, sd across architectures "
                  f"{_fmt(r['sd_across_architectures'])}, mean sd across seeds {_fmt(r['mean_seed_sd'])} (points); "
                  f"{_fmt(r['cost_s'], 1)} s per training. The mean of its {len(ref['seeds'])} seeds: reliability "
                  f"{_fmt(r['mean_reliability'])} (predicted); the mean of {r['seeds_for_0.9'] or '–'} seed(s) would reach 0.9.", "",
                  "| probe | kind | ρ | τ | ρ one seed | seed ρ | ρ attainable | s / candidate | n |", "|---|---|---|---|---|---|---|---|---|"]
        for probe, v in s["probes"].items():
            lines.append(f"| {probe} | {v['kind']} | {_fmt(v['spearman'])} | {_fmt(v['kendall'])} | {_fmt(v['spearman_one_seed'])} | "
                         f"{_fmt(v['seed_rho'])} | {_fmt(v['attainable'])} | {_fmt(v['cost_s'], 3)} | {v['n']} |")
        lines.append("")
    if "selected" in result:
        sel = result["selected"]
        lines += [f"Chosen on the calibration set: `{sel['probe']}` (ρ {_fmt(sel['calibration_spearman'])}); on the hold-out set "
                  f"its ρ is {_fmt(sel['holdout_spearman'])}.", ""]
    if result["failures"]:
        lines += [f"## Failures ({len(result['failures'])}, left out of the statistics)", ""]
        lines += [f"- `{f['arch'][:12]}` {f['probe']} seed {f['seed']}: {f['reason']}" for f in result["failures"]]
        lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Left: every probe's ρ per set, the ceiling as a line. Right: the default protocol's accuracy against the reference's."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    sets = result["sets"]
    names = list(sets["calibration"]["probes"])
    fig = Figure(figsize=(12, max(4.0, 0.35 * len(names) + 1.5)), layout="constrained")
    bars, scatter = fig.subplots(1, 2, width_ratios=[3, 2])
    height = 0.8 / len(sets)
    for k, (set_name, s) in enumerate(sets.items()):
        ys = [i + k * height for i in range(len(names))]
        bars.barh(ys, [s["probes"][n]["spearman"] or 0.0 for n in names], height=height, color=f"C{k}", label=f"{set_name} set")
        ceiling = s["reference"]["seed_rho"]
        if ceiling is not None:
            bars.axvline(ceiling, color=f"C{k}", linestyle="--", label=f"ceiling ({set_name}): reference seed ρ {ceiling:.2f}")
    bars.set_yticks([i + height * (len(sets) - 1) / 2 for i in range(len(names))], names)
    bars.invert_yaxis()
    bars.axvline(0, color="black", linewidth=0.8)
    bars.set_xlim(-1, 1)
    bars.set_xlabel("Spearman ρ against the reference's mean top-1")
    bars.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize="small")
    default = result["protocols"][0]["name"]
    for k, set_name in enumerate(sets):
        pts = [(mean_of_all(r["probes"][default]), mean_of_all(r["reference"])) for r in result["rows"] if r["set"] == set_name]
        pts = [(x, y) for x, y in pts if x is not None and y is not None]
        if pts:
            scatter.scatter(*zip(*pts), color=f"C{k}", label=f"{set_name} (ρ {_fmt(sets[set_name]['probes'][default]['spearman'])})")
    scatter.set_xlabel(f"protocol '{default}': mean proxy top-1 %")
    scatter.set_ylabel("reference: mean top-1 %")
    scatter.legend(loc="lower right", fontsize="small")
    fig.suptitle(f"gensynth calibrate: {result['space']}, N = {result['n']}")
    fig.savefig(path, dpi=110)

"""Write bench/results/README.md (tables) and bench/results/plots/*.html from the JSON results.

    python -m bench.report                 # every bench/results/*.json
    python -m bench.report --results DIR

Reads the outputs of bench/unlearning.py (one per data set and model, keys ``per_class`` and
``speedup_vs_retrain``), of bench/sweep.py (``method`` and ``rows``: the Dr_sub trade-off chart)
of bench/recipes.py (training time and accuracy per recipe set), of bench/audit.py (``unsir_minus``:
every audit figure and UNSIR against its noise ablations), of bench/zoo.py (``zoo``: each preset on
models trained outside the project) and of bench/dashboard.py (medians of the new user's path).
Hand-written text goes in ``NOTES.md`` beside the results; it is copied in under the tables. A
result's ``caveats`` (strings added to its JSON by hand after the run, the figures untouched) are
printed under its command.
Plots are plotly HTML files that load plotly.js from its CDN (a few kB each).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from plotly.subplots import make_subplots

from bench.common import ROOT
from unsir_core.evaluation import table_columns
from unsir_core.presentation import BENCH, Column, bench_label, format_bench

# ../shared/UNSIR.md, "Paper's headline results" (CIFAR-10 ResNet18, one class).
PAPER = {
    "original_retain": 0.7786,
    "original_forget": 0.8101,
    "unsir_retain": 0.7106,
    "unsir_forget": 0.0,
    "speedup_vs_retrain": 154.0,
    "speedup_vs_fisher": 1875.0,
}


def caveats(payload: dict) -> list[str]:
    """A result's ``caveats``: what was learned about a run after it (e.g. a timing taken while
    something else shared the CPU), written into its JSON by hand beside the untouched figures."""
    return [line for text in payload.get("caveats", []) for line in (f"**Caveat:** {text}", "")]


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def load(results: Path) -> dict[str, list[tuple[str, dict]]]:
    """The result files by the script that wrote them: ``bench`` (unlearning.py), ``sweep``,
    ``dashboard``, ``audit``, ``recipes``, ``distributed``, ``zoo``; other JSON (profile_step.py) is not
    tabulated here."""
    found: dict[str, list[tuple[str, dict]]] = {
        "bench": [], "sweep": [], "dashboard": [], "audit": [], "recipes": [], "distributed": [], "zoo": []
    }  # fmt: skip
    for path in sorted(results.glob("*.json")):
        payload = json.loads(path.read_text())
        if "unsir_minus" in payload:
            found["audit"].append((path.name, payload))
        elif "zoo" in payload:
            found["zoo"].append((path.name, payload))
        elif payload.get("benchmark") in ("recipes", "distributed"):
            found[payload["benchmark"]].append((path.name, payload))
        elif "per_class" in payload:
            found["bench"].append((path.name, payload))
        elif "method" in payload and isinstance(payload.get("rows"), list):
            found["sweep"].append((path.name, payload))
        elif "click_to_comparison_seconds" in payload.get("median", {}):
            found["dashboard"].append((path.name, payload))
    return found


def bench_section(name: str, b: dict) -> list[str]:
    methods = b["methods"]
    timing = b["retrain"]["timing"]
    without = ", ".join(map(str, timing["forget"]))
    how = (
        f"timed over {timing['measured_epochs']} epoch(s) without class(es) {without} "
        f"({timing['measured_seconds']:.1f} s) and scaled to {timing['epochs']} epochs"
        if timing["scaled"]
        else f"measured over the full {timing['epochs']}-epoch retraining without class(es) {without}"
    ) + ", then scaled to each forget set's retained sample count"
    preset = f"UNSIR preset `{b['preset']}`. " if "unsir" in methods else ""
    lines = [
        f"### {b['dataset']} {b['model']} (`{name}`)",
        "",
        f"`{b['command']}`",
        "",
        *caveats(b),
        f"Device {b['device']} ({b['environment'].get('cpu_threads')} CPU threads, CUDA "
        f"{b['environment'].get('cuda') or 'none'}), torch {b['environment']['torch']}, commit "
        f"`{(b['environment'].get('git_commit') or '?')[:10]}`, finished {b['finished_at']}. "
        f"{len(b['per_class'])} forget set(s) x seeds {b['seeds']}; original model seed {b['model_seed']}. "
        f"{preset}Retraining time {how}.",
        "",
        "| model | forget acc % (mean ± sd over runs) | retain acc % | seconds (mean) | speed-up of UNSIR |",
        "|---|---|---|---|---|",
        f"| original | {pct(b['original']['forget_acc'])} | {pct(b['original']['retain_acc'])} | | |",
        f"| retrain | 0 by construction | | {b['retrain']['seconds']:.1f}{' (scaled)' if timing['scaled'] else ''} "
        f"| {speedup(b, 'retrain')} |",
    ]
    for m in methods:
        r, sp = b[m], b[m]["spread"]
        speed = "1x" if m == "unsir" else speedup(b, m)
        lines.append(
            f"| {m} | {pm(r['forget_acc'], sp['forget_acc']['std'])} | {pm(r['retain_acc'], sp['retain_acc']['std'])} "
            f"| {r['seconds']:.1f} | {speed} |"
        )
    lines += ["", "Per forget set (means over seeds; Δ = change of retain accuracy against the original):", ""]
    lines += [
        "| forget | original forget / retain % | " + " | ".join(f"{m} forget / Δretain" for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for s in b["per_class"]:
        cells = [
            f"{pct(s[m]['forget_acc'])} / {100 * (s[m]['retain_acc'] - s['original']['retain_acc']):+.2f}"
            for m in methods
        ]
        lines.append(
            f"| {', '.join(s['forget_names'])} | {pct(s['original']['forget_acc'])} / "
            f"{pct(s['original']['retain_acc'])} | " + " | ".join(cells) + " |"
        )
    if "goals" in b:
        g = b["goals"]
        lines += [
            "",
            f"Goals: forget ≤ {pct(g['max_forget_acc'])} % for every set: worst set (mean over seeds) "
            f"{pct(g['worst_forget_acc'])} % ({'met' if g['forget_met'] else 'NOT met'}){single_runs(g)}; "
            f"retain within {pct(g['max_retain_drop'])} points: "
            f"mean drop {100 * g['mean_retain_drop']:.2f}, worst set {100 * g['worst_retain_drop']:.2f}"
            f"{worst_run_drop(g)} ({'met' if g['retain_met'] else 'NOT met'}); "
            f"speed-up ≥ {g['min_speedup_vs_retrain']:.0f}x over "
            f"retraining: {b['speedup_vs_retrain']:.1f}x ({'met' if g['speedup_met'] else 'NOT met'}).",
        ]
    return [*lines, ""]


def speedup(b: dict, method: str) -> str:
    """UNSIR's speed-up over ``method``; "-" where UNSIR was not in the run (nothing to compare)."""
    key = f"speedup_vs_{method}"
    return f"{b[key]:.1f}x" if key in b else "-"


def single_runs(goals: dict) -> str:
    """The forget goal run by run, where the result file has it (older files do not)."""
    if "worst_run_forget_acc" not in goals:
        return ""
    return (
        f", worst single run {pct(goals['worst_run_forget_acc'])} % ({goals['runs_over_forget_goal']} of "
        f"{goals['unsir_runs']} runs above the goal)"
    )


def worst_run_drop(goals: dict) -> str:
    """The retain goal's worst single run, where the result file has it (older files do not)."""
    return f", worst single run {100 * goals['worst_run_retain_drop']:.2f}" if "worst_run_retain_drop" in goals else ""


def paper_section(benches: list[tuple[str, dict]]) -> list[str]:
    ours = dict(benches).get("cifar10_resnet18.json")  # the single-class benchmark, not the multi-class one
    if ours is None or "unsir" not in ours["methods"]:
        return []
    lines = [
        "## Against the paper (CIFAR-10 ResNet18, one class)",
        "",
        "| | paper | here |",
        "|---|---|---|",
        f"| original retain / forget % | {pct(PAPER['original_retain'])} / {pct(PAPER['original_forget'])} | "
        f"{pct(ours['original']['retain_acc'])} / {pct(ours['original']['forget_acc'])} |",
        f"| UNSIR retain / forget % | {pct(PAPER['unsir_retain'])} / {pct(PAPER['unsir_forget'])} | "
        f"{pct(ours['unsir']['retain_acc'])} / {pct(ours['unsir']['forget_acc'])} |",
        f"| retain lost by UNSIR, points | {100 * (PAPER['original_retain'] - PAPER['unsir_retain']):.2f} | "
        f"{100 * ours['unsir']['retain_drop']:.2f} |",
        f"| speed-up vs retraining | {PAPER['speedup_vs_retrain']:.0f}x | {ours['speedup_vs_retrain']:.1f}x |",
    ]
    if "speedup_vs_fisher" in ours:
        lines.append(f"| speed-up vs Fisher | {PAPER['speedup_vs_fisher']:.0f}x | {ours['speedup_vs_fisher']:.1f}x |")
    return [*lines, ""]


def bench_plot(b: dict, out: Path) -> None:
    methods = b["methods"]
    names = [", ".join(s["forget_names"]) for s in b["per_class"]]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("forget accuracy (test)", "retain accuracy (test)"))
    for m in ["original", *methods]:
        for col, key in ((1, "forget_acc"), (2, "retain_acc")):
            fig.add_bar(
                x=names,
                y=[s[m][key] for s in b["per_class"]],
                name=m,
                legendgroup=m,
                showlegend=col == 1,
                row=1,
                col=col,
            )
    fig.update_layout(title=f"{b['dataset']} {b['model']}: per forget set, mean over seeds {b['seeds']}")
    fig.write_html(out, include_plotlyjs="cdn")


def retrain_timing(retrain: dict) -> str:
    """How each recipe set's retraining was timed by a sweep."""
    return "; ".join(
        f"{name} recipe {t['seconds']:.0f} s ("
        + (f"scaled from {t['measured_epochs']} epoch(s)" if t["scaled"] else "a cached model's recorded time")
        + ")"
        for name, t in retrain.items()
    )


def sweep_section(name: str, s: dict, plots: Path) -> list[str]:
    """A sweep's table (medians over classes and seeds, and the worst run) and its chart: each
    config's forget and retained accuracy against its wall time, with the speed-up over
    retraining where the sweep timed it (``--time-retrain``)."""
    labels = list(dict.fromkeys(r["label"] for r in s["rows"]))
    retrain = s.get("retrain") or {}
    seeds = s.get("seeds") or [s["seed"]]
    classes = sorted({r["class"] for r in s["rows"]})
    lines = [
        f"### Sweep `{name}`: {s['method']} on {s['dataset']} {s['model']} "
        f"(classes {', '.join(map(str, classes))}; seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(map(str, seeds))}; {s['recipes'] + ' recipe set; ' if 'recipes' in s else ''}{s['device']})",
        "",
        *([f"`{s['command']}`", ""] if s.get("command") else []),
        *caveats(s),
        *([f"Retraining, timed in the same run: {retrain_timing(retrain)}", ""] if retrain else []),
        "| config | forget % (median) | forget % (worst run) | Δretain points (median) | Δretain points (worst run) "
        "| seconds (median) |" + "".join(f" speed-up vs {n} retraining |" for n in retrain),
        "|---|---|---|---|---|---|" + "---|" * len(retrain),
    ]
    med = {}
    failed = [r for r in s["rows"] if "error" in r]  # e.g. a calibration that found no setting
    labels = [label for label in labels if any(r["label"] == label and "error" not in r for r in s["rows"])]
    for label in labels:
        rows = [r for r in s["rows"] if r["label"] == label and "error" not in r]
        drops = [r["retain_acc"] - r["original_retain_acc"] for r in rows]
        med[label] = (
            statistics.median(r["forget_acc"] for r in rows),
            statistics.median(drops),
            statistics.median(r["seconds"] for r in rows),
        )
        f, d, sec = med[label]
        worst_f, worst_d = max(r["forget_acc"] for r in rows), min(drops)
        speedups = "".join(f" {t['seconds'] / sec:.0f}x |" for t in retrain.values())
        lines.append(
            f"| {label} | {pct(f)} | {pct(worst_f)} | {100 * d:+.2f} | {100 * worst_d:+.2f} | {sec:.1f} |{speedups}"
        )
    lines += [
        f"- {r['label']}, class {r['class']}, seed {r['seed']}: no model (error: {r['error'][:200]}...)" for r in failed
    ]
    fig = make_subplots(
        rows=2,
        cols=3,
        subplot_titles=(
            "forget accuracy",
            "Δ retain accuracy",
            "seconds",
            "forget accuracy against seconds",
            "Δ retain accuracy against seconds",
        ),
    )
    for col in range(3):  # by config
        y = [med[label][col] for label in labels]
        fig.add_scatter(x=labels, y=y, mode="lines+markers", showlegend=False, row=1, col=col + 1)
    for col in range(2):  # the trade-off: each config's accuracy against its time
        x, y = [med[label][2] for label in labels], [med[label][col] for label in labels]
        fig.add_scatter(
            x=x, y=y, text=labels, mode="markers+text", textposition="top center", showlegend=False, row=2, col=col + 1
        )
        fig.update_xaxes(title_text="unlearning seconds (median)", row=2, col=col + 1)
    fig.update_layout(title=f"{s['method']} on {s['dataset']} {s['model']}: medians over classes and seeds")
    plot = plots / f"{Path(name).stem}.html"
    fig.write_html(plot, include_plotlyjs="cdn")
    return [*lines, "", f"Plot: [plots/{plot.name}](plots/{plot.name})", ""]


def dashboard_section(name: str, d: dict) -> list[str]:
    """The new user's path, step by step; with a baseline commit timed in the same run
    (``--baseline``), its column and the speed-up (median / median)."""
    env, med = d["environment"], d["median"]
    base = d.get("baseline")
    steps = [
        ("open the app and reach the Unlearn page", "open_seconds"),
        ("click Unlearn -> job finished", "job_seconds"),
        ("click Unlearn -> comparison (charts and GradCAM) shown", "click_to_comparison_seconds"),
        ("  of which: original model trained", "original_train_seconds"),
        ("  retrained model trained", "retrain_seconds"),
        ("  UNSIR", "unsir_seconds"),
        ("same experiment on the CLI", "cli_seconds"),
    ]
    commit = (env["git_commit"] or "?")[:10]
    lines = [
        f"### Dashboard, a new user's path (`{name}`)",
        "",
        f"`{d['command']}`",
        "",
        *caveats(d),
        f"{env['cpu_threads']} CPU threads, CUDA {env['cuda'] or 'none'}, commit `{commit}`; "
        f"medians of {len(d['rows'])} repeat(s), each from an empty cache"
        + (f"; the baseline `{base['rev']}` timed in the same run, alternating." if base else "."),
        "",
    ]

    def total(m: dict) -> float | None:
        return m["open_seconds"] + m["click_to_comparison_seconds"] if "open_seconds" in m else None

    if base:
        bmed = base["median"]
        lines += ["| step | baseline s | now s | speed-up |", "|---|---|---|---|"]
        for label, key in steps:
            if key in med and key in bmed:
                lines.append(f"| {label} | {bmed[key]:.1f} | {med[key]:.1f} | {bmed[key] / med[key]:.2f}x |")
        if total(med) and total(bmed):
            lines.append(
                f"| **opening to comparison** | **{total(bmed):.1f}** | **{total(med):.1f}** | "
                f"**{total(bmed) / total(med):.2f}x** |"
            )
        if "dashboard_over_cli" in med and "dashboard_over_cli" in bmed:
            ratios = bmed["dashboard_over_cli"], med["dashboard_over_cli"]
            lines.append("| dashboard / CLI | {:.2f}x | {:.2f}x | |".format(*ratios))
        return [*lines, ""]
    lines += ["| step | seconds |", "|---|---|"]
    lines += [f"| {label} | {med[key]:.1f} |" for label, key in steps if key in med]
    if total(med):
        lines.append(f"| **opening to comparison** | **{total(med):.1f}** |")
    if "dashboard_over_cli" in med:
        lines.append(f"| dashboard / CLI | {med['dashboard_over_cli']:.2f}x |")
    return [*lines, ""]


def measured_figures(a: dict) -> list[Column]:
    """The audit figures some model of ``a`` has a number for (a run with fewer ``--metrics``
    leaves the others out of its tables), among the columns the metric registry shows in bench's
    tables (accuracies and rates in percent; presentation.format_bench)."""
    return [c for c in table_columns(BENCH) if any(figs.get(c.key) for figs in a["models"].values())]


def forget_sets(a: dict) -> str:
    """The forget sets of audit ``a``, each with the seeds it holds so far when it is not all of
    them (an interrupted run, to be resumed)."""
    names = []
    for c in a["per_class"]:
        seeds = [s["seed"] for s in c["per_seed"]]
        names.append("+".join(c["forget_names"]) + ("" if seeds == a["seeds"] else f" (seeds {seeds} so far)"))
    return ", ".join(names)


def audit_section(name: str, a: dict) -> list[str]:
    env, recipe = a["environment"], a["recipe"]
    figures = measured_figures(a)
    classes = forget_sets(a)
    lines = [
        f"### Audit: {a['dataset']} {a['model']} (`{name}`)",
        "",
        f"`{a['command']}`",
        "",
        *caveats(a),
        f"Forget classes {classes} (each its own experiment) x seeds {', '.join(map(str, a['seeds']))}; original and "
        f"retrained models: model seed {a['model_seed']}, {recipe['epochs']} epochs of {recipe['optimizer']} / "
        f"{recipe['scheduler']}{', augmented' if recipe.get('augment') else ''}"
        f"{', ' + recipe['precision'] if recipe.get('precision', 'fp32') != 'fp32' else ''}. "
        f"{env['cpu_threads']} CPU threads, CUDA {env['cuda'] or 'none'}, commit `{(env['git_commit'] or '?')[:10]}`. "
        "Mean ± standard deviation over every (class, seed) run.",
        "",
        "| model | " + " | ".join(bench_label(c) for c in figures) + " |",
        "|---|" + "---|" * len(figures),
    ]
    for model, figs in a["models"].items():
        cells = []
        for c in figures:
            f = figs.get(c.key)
            cells.append("-" if not f else f"{format_bench(c, f['mean'])} ± {format_bench(c, f['std'])}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines.append("")
    for ablation, comparison in a["unsir_minus"].items():
        lines += [
            f"UNSIR minus `{ablation}`, paired by (class, seed): mean difference, its 95 % CI, the paired "
            "t-test's p (**bold**: significant after Holm's correction over the figures), the same test on each "
            "class's mean over seeds (the seeds of a class share its original model, so they are not independent "
            "classes), the change in distance to the retrained model's figure (negative: UNSIR is closer), and "
            "UNSIR's own standard deviation over seeds.",
            "",
            "| figure | UNSIR - ablation | 95 % CI | p | p by class | Δ distance to retrained | UNSIR seed sd |",
            "|---|---|---|---|---|---|---|",
        ]
        for col in figures:
            key = col.key
            d, g = comparison["difference"].get(key), comparison["gap_to_retrained"].get(key)
            sd = comparison["unsir_seed_sd"].get(key)
            if not d:
                continue
            p = f"**{d['p']:.3g}**" if d.get("significant") else f"{d['p']:.3g}"
            ci = f"[{format_bench(col, d['ci95'][0])}, {format_bench(col, d['ci95'][1])}]"
            gap = "-" if not g else format_bench(col, g["mean"])
            c = (comparison.get("difference_by_class") or {}).get(key)
            by_class = "-" if not c else f"**{c['p']:.3g}**" if c.get("significant") else f"{c['p']:.3g}"
            sd = "-" if sd is None else format_bench(col, sd)
            lines.append(
                f"| {bench_label(col)} | {format_bench(col, d['mean'])} | {ci} | {p} | {by_class} | {gap} | {sd} |"
            )
        lines.append("")
    return lines + closest_lines(a)


def closest_lines(a: dict) -> list[str]:
    """Each method's mean distance |method - retrained| per figure (same class and seed), the
    closest in bold, and its mean wall time: who comes closest to the gold standard, at what cost."""
    gaps = a.get("to_retrained")
    if not gaps:
        return []
    shown = [c for c in measured_figures(a) if c.key != "seconds"]
    lines = [
        "Distance to the retrained model, |method - retrained| averaged over the (class, seed) runs "
        "(**bold**: the closest method on that figure, every one when tied), and each method's mean wall time.",
        "",
        "| method | " + " | ".join(bench_label(c) for c in shown) + " | seconds |",
        "|---|" + "---|" * (len(shown) + 1),
    ]
    for name, figs in gaps.items():
        cells = []
        for c in shown:
            f = figs.get(c.key)
            best = name in (a.get("closest") or {}).get(c.key, {}).get("methods", [])
            cells.append("-" if not f else f"**{format_bench(c, f['mean'])}**" if best else format_bench(c, f["mean"]))
        secs = (a["models"].get(name) or {}).get("seconds")
        time_cell = "-" if not secs else f"{secs['mean']:.1f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {time_cell} |")
    return [*lines, ""]


def recipes_section(name: str, r: dict) -> list[str]:
    """One row per model and recipe: with several seeds the median time and the mean (lowest)
    test accuracy over the seeds."""
    env = r["environment"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in r["rows"]:
        groups.setdefault((row["model"], row["recipes"]), []).append(row)
    seconds = {key: statistics.median(row["seconds"] for row in rows) for key, rows in groups.items()}
    seeds = r.get("seeds", [r["seed"]])
    lines = [
        f"### Training recipes (`{name}`)",
        "",
        f"`{r['command']}`",
        "",
        *caveats(r),
        f"{r['dataset']}, model seed(s) {', '.join(map(str, seeds))}, {env['cpu_threads']} CPU threads, "
        f"CUDA {env['cuda'] or 'none'}, commit `{(env['git_commit'] or '?')[:10]}`. Scaled: timed over the first "
        "epochs and scaled to the recipe's epoch count (its accuracy is then not measured in this run)."
        + (" Seconds: median over the seeds; accuracy: mean (lowest)." if len(seeds) > 1 else ""),
        "",
        "| model | recipe | epochs | optimizer / schedule | precision | seconds | of official time | test acc % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (model, recipes), rows in groups.items():
        row, rec = rows[0], rows[0]["recipe"]
        base = seconds.get((model, "official"))
        share = "-" if not base else f"{seconds[model, recipes] / base:.1%}"
        scaled = f" (scaled from {row['measured_epochs']})" if row["scaled"] else ""
        accs = [x["test_accuracy"] for x in rows if x["test_accuracy"] is not None]
        acc = "-" if not accs else f"{100 * statistics.fmean(accs):.2f}"
        if len(accs) > 1:
            acc += f" ({100 * min(accs):.2f})"
        lines.append(
            f"| {model} | {recipes} | {row['epochs']} | {rec['optimizer']} / {rec['scheduler']} | "
            f"{rec.get('precision', 'fp32')} | {seconds[model, recipes]:.0f}{scaled} | {share} | {acc} |"
        )
    return [*lines, ""]


def zoo_section(name: str, z: dict) -> list[str]:
    """One row per (original, model seed, forget class): each preset's test forget accuracy, its
    retained accuracy's change from the original's and its seconds (calibration's share in
    brackets), beside the retraining time; then each preset's summary over the rows."""
    env = z["environment"]
    presets = [p for p in ("calibrated", "tuned", "official") if any(p in r["presets"] for r in z["rows"])]
    lines = [
        f"### Model zoo (`{name}`)",
        "",
        f"`{z['command']}`",
        "",
        *caveats(z),
        f"{z['device']}, {env['cpu_threads']} CPU threads, CUDA {env['cuda'] or 'none'}, commit "
        f"`{(env['git_commit'] or '?')[:10]}`. Each preset: test forget accuracy % / retained accuracy's change "
        "in points / seconds end to end (calibration's in brackets); retraining: the original's training time "
        "scaled to the retained share of its training set.",
        "",
        "| original | seed | class | original forget / retained % | " + " | ".join(presets) + " | retraining s |",
        "|---|---|---|---|" + "---|" * len(presets) + "---|",
    ]
    for row in z["rows"]:
        first = next(iter(row["presets"].values()))
        cells = []
        for preset in presets:
            s = row["presets"].get(preset)
            if s is None:
                cells.append("-")
            elif s["error"]:
                cells.append("refused")
            else:
                calibration = (s["phases"] or {}).get("calibration")
                share = f" ({calibration:.0f})" if calibration is not None else ""
                change = 100 * (s["retain_acc"] - s["original_retain_acc"])
                cells.append(f"{pct(s['forget_acc'])} / {change:+.2f} / {s['seconds']:.0f}{share}")
        original = f"{pct(first['original_forget_acc'])} / {pct(first['original_retain_acc'])}"
        lines.append(
            f"| {row['entry']} | {row['model_seed']} | {row['forget']} | {original} | "
            + " | ".join(cells)
            + f" | {row['retrain_seconds']:.0f} |"
        )
    lines += [
        "",
        "| preset | runs | refused | forget <= 1 % | retained change, mean (worst), points | median s |",
        "|---|---|---|---|---|---|",
    ]
    for preset in presets:
        s = z["summary"][preset]
        change = (
            "-"
            if s["retain_change_mean"] is None
            else f"{100 * s['retain_change_mean']:+.2f} ({100 * s['retain_change_worst']:+.2f})"
        )
        median = "-" if s["seconds_median"] is None else f"{s['seconds_median']:.0f}"
        lines.append(
            f"| {preset} | {s['runs']} | {s['failed']} | {s['forget_le_1pct']} of {s['runs'] - s['failed']} | "
            f"{change} | {median} |"
        )
    return [*lines, ""]


def distributed_section(name: str, r: dict) -> list[str]:
    """One- against several-process training (bench/distributed.py): median times per process
    count and whether every run wrote the same cache key."""
    env = r["environment"]
    lines = [
        f"### {r['dataset']} {r['model']}, {r['epochs']} epoch(s) (`{name}`)",
        "",
        f"`{r['command']}`",
        "",
        *caveats(r),
        f"{env['cpu_threads']} CPU threads, CUDA {env['cuda'] or 'none'}, commit `{(env['git_commit'] or '?')[:10]}`; "
        f"{r['recipes']} recipe set. Same checkpoint name for every process count: "
        f"{'yes' if r['same_checkpoint_name'] else '**no**'}.",
        "",
        "| processes | training s (median) | wall s (median, start-up included) | speed-up (training) |",
        "|---|---|---|---|",
    ]
    for n, m in r["median"].items():
        lines.append(f"| {n} | {m['train_seconds']:.1f} | {m['wall_seconds']:.1f} | {r['speedup_vs_first'][n]:.2f}x |")
    return [*lines, ""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()
    results = Path(args.results)
    plots = results / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    found = load(results)
    benches, sweeps = found["bench"], found["sweep"]
    lines = [
        "# Benchmark results",
        "",
        "Made by `bench/unlearning.py`, `bench/sweep.py`, `bench/recipes.py`, `bench/distributed.py`, "
        "`bench/audit.py`, `bench/zoo.py` and `bench/dashboard.py`; this file by "
        "`python -m bench.report`. Every figure below was measured by the command shown with it, on the machine it "
        "names. Accuracies are on the test split.",
        "",
        *paper_section(benches),
        "## Benchmarks",
        "",
    ]
    for name, b in benches:
        lines += bench_section(name, b)
        plot = plots / f"{Path(name).stem}.html"
        bench_plot(b, plot)
        lines += [f"Plot: [plots/{plot.name}](plots/{plot.name})", ""]
    if sweeps:
        lines += ["## Hyper-parameter sweeps", ""]
        for name, s in sweeps:
            lines += sweep_section(name, s, plots)
    if found["recipes"]:
        lines += ["## Training recipes", ""]
        for name, r in found["recipes"]:
            lines += recipes_section(name, r)
    if found["distributed"]:
        lines += ["## Training on several processes (torchrun)", ""]
        for name, r in found["distributed"]:
            lines += distributed_section(name, r)
    if found["zoo"]:
        lines += ["## Model zoo: UNSIR on models trained outside the project", ""]
        for name, z in found["zoo"]:
            lines += zoo_section(name, z)
    if found["audit"]:
        lines += ["## Audit: inside the model, and what the noise adds", ""]
        for name, a in found["audit"]:
            lines += audit_section(name, a)
    if found["dashboard"]:
        lines += ["## Dashboard", ""]
        for name, d in found["dashboard"]:
            lines += dashboard_section(name, d)
    notes = results / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    (results / "README.md").write_text("\n".join(lines))
    print(f"wrote {results / 'README.md'} ({len(benches)} benchmark(s), {len(sweeps)} sweep(s))")


if __name__ == "__main__":
    main()

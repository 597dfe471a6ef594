"""The audit benchmark: every metric, inside the model included, for UNSIR, its noise ablations
and baselines against the retrained model; and whether the error-maximising noise changes any
of them beyond the seed spread. Prints tables, writes JSON (after each forget set, so an
interrupted run keeps what it measured).

    python bench/audit.py --dataset cifar10 --model resnet18 --forget 3,5,9 --seeds 0,1,2 \\
        --out bench/results/cifar10_resnet18_audit.json

Each forget class is one experiment (``unsir_core.experiment``): the original and the
retrained model (official recipe, ``--model-seed``, trained once and cached) and every method
for every seed, all with ``--metrics`` (default: all). The JSON keeps, per forget class, seed
and model, the single-number figures (accuracies, relearn steps, MIA per attack, JS to the
retrained model, probe accuracies, CKA of the last two blocks, ZRF, ToW, seconds; the full
per-block CKA and the 2-D maps stay in ``--runs`` if given), their mean and standard
deviation over all runs, and the paired differences between UNSIR and each noise ablation
(same class, same seed: the same Dr_sub and the same noise draw), with a flag where the mean
difference is beyond twice its standard error.
"""

from __future__ import annotations

import math
import statistics
import time

from common import base_parser, command, write_result

from unsir_core.config import with_overrides
from unsir_core.errors import UnsirError
from unsir_core.evaluation import list_metrics
from unsir_core.experiment import ExperimentConfig, run_experiment
from unsir_core.methods import parse_method_overrides
from unsir_core.provenance import environment
from unsir_core.recipes import default_recipe
from unsir_core.runs import write_run

METHODS = "unsir,unsir_random_noise,unsir_no_noise,finetune,neggrad"
ABLATIONS = ("unsir_random_noise", "unsir_no_noise")


def figures(entry: dict) -> dict[str, float]:
    """The single-number figures of one model's metrics (None where not measured)."""
    mia = entry.get("mia") or {}
    attacks = mia.get("attacks") or {}
    probe = entry.get("probe") or {}
    cka_forget = (entry.get("cka") or {}).get("forget") or {}
    out = {
        "forget_acc": entry.get("forget_acc"),
        "retain_acc": entry.get("retain_acc"),
        "forget_acc_train": entry.get("forget_acc_train"),
        "relearn_steps": (entry.get("relearn") or {}).get("steps"),
        "js_to_retrained": (entry.get("output_distance") or {}).get("js_divergence"),
        "probe_linear_forget": (probe.get("linear") or {}).get("forget"),
        "probe_knn_forget": (probe.get("knn") or {}).get("forget"),
        "probe_linear_retain": (probe.get("linear") or {}).get("retain"),
        "zrf": entry.get("zrf"),
        "tow": entry.get("tow"),
        "seconds": entry.get("seconds"),
    }
    for feature, result in attacks.items():
        out[f"mia_{feature}"] = result["member_rate"]
    if mia.get("strongest"):
        out["mia_worst"] = attacks[mia["strongest"]]["member_rate"]
    for reference in ("original", "retrained"):
        blocks = list((cka_forget.get(reference) or {}).items())
        for label, (block, value) in zip(("last", "second_last"), reversed(blocks[-2:]), strict=False):
            out[f"cka_{reference}_{label}"] = value
            out[f"cka_{reference}_{label}_block"] = block
    return out


def spread(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "n": len(values)}


def paired(a: list[float], b: list[float]) -> dict | None:
    """Mean and standard deviation of a - b over paired runs, its standard error, and whether
    the mean is beyond twice the standard error (a two-sided ~95 % paired test)."""
    diffs = [x - y for x, y in zip(a, b, strict=True) if isinstance(x, (int, float)) and isinstance(y, (int, float))]
    if len(diffs) < 2:
        return None
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    se = sd / math.sqrt(len(diffs))
    return {"mean": mean, "std": sd, "se": se, "n": len(diffs), "beyond_spread": abs(mean) > 2 * se and mean != 0}


def summarise(classes: list[dict]) -> dict:
    """Means over every (class, seed) run of each model's figures, and UNSIR minus each
    ablation, paired by class and seed."""
    rows: dict[str, list[dict]] = {}
    for c in classes:
        for seed_runs in c["per_seed"]:
            for name, figs in seed_runs["models"].items():
                rows.setdefault(name, []).append(figs)
    keys = [k for k, v in next(iter(rows.values()))[0].items() if not k.endswith("_block")]
    models = {name: {k: spread([r.get(k) for r in runs]) for k in keys} for name, runs in rows.items()}
    noise = {}
    for ablation in ABLATIONS:
        if "unsir" in rows and ablation in rows:
            noise[ablation] = {
                k: paired([r.get(k) for r in rows["unsir"]], [r.get(k) for r in rows[ablation]]) for k in keys
            }
    return {"models": models, "unsir_minus": noise}


def print_table(summary: dict, keys: list[str]) -> None:
    print(f"\n{'model':<20}" + "".join(f"{k[:14]:>16}" for k in keys))
    for name, figs in summary["models"].items():
        cells = [f"{figs[k]['mean']:.3f}±{figs[k]['std']:.3f}" if figs.get(k) else "-" for k in keys]
        print(f"{name:<20}" + "".join(f"{c:>16}" for c in cells))
    for ablation, diffs in summary["unsir_minus"].items():
        cells = [
            (f"{d['mean']:+.3f}{'*' if d['beyond_spread'] else ' '}" if (d := diffs.get(k)) else "-") for k in keys
        ]
        print(f"{'unsir - ' + ablation[6:]:<20}" + "".join(f"{c:>16}" for c in cells))
    print("(* : the mean paired difference is beyond twice its standard error)")


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--forget", default="3,5,9", help="forget classes, each its own experiment (comma-separated)")
    p.add_argument("--seeds", default="0,1,2", help="unlearning seeds")
    p.add_argument("--model-seed", type=int, default=0, help="seed of the original and retrained models")
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--metrics", default="all", help="'all' or a comma-separated list")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="change a method's hyper-parameter (the ablations follow UNSIR's changes)",
    )
    p.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="training recipe override of the original and retrained models, e.g. epochs=3",
    )
    p.add_argument("--runs", help="also store each forget class's metrics.json as a run in this folder")
    p.add_argument("--out", help="JSON file for the results")
    args = p.parse_args()

    metrics = list_metrics() if args.metrics == "all" else [m for m in args.metrics.split(",") if m]
    seeds = tuple(int(s) for s in args.seeds.split(","))
    methods = tuple(m for m in args.methods.split(",") if m)
    classes, started = [], time.strftime("%Y-%m-%dT%H:%M:%S%z")
    payload: dict = {}
    for forget in [c.strip() for c in args.forget.split(",") if c.strip()]:
        cfg = ExperimentConfig(
            dataset=args.dataset,
            model=args.model,
            forget=(forget,),
            seeds=seeds,
            model_seed=args.model_seed,
            device=args.device,
            data_dir=args.data_dir,
            methods=methods,
            metrics=tuple(metrics),
            train=with_overrides(default_recipe(args.dataset, args.model), args.recipe),
            method_overrides=parse_method_overrides(args.set),
        )
        t = time.perf_counter()
        result, _ = run_experiment(cfg)
        if args.runs:
            write_run(f"{args.runs}/{args.dataset}-{args.model}-forget{forget}", result)
        classes.append(
            {
                "forget": result["forget_classes"],
                "forget_names": result["forget_class_names"],
                "seconds": time.perf_counter() - t,
                "errors": result["errors"],
                "per_seed": [
                    {"seed": s["seed"], "models": {name: figures(entry) for name, entry in s["models"].items()}}
                    for s in result["per_seed"]
                ],
            }
        )
        summary = summarise(classes)
        payload = {
            "benchmark": f"{args.dataset}_{args.model}_audit",
            "command": command(),
            "dataset": args.dataset,
            "model": args.model,
            "seeds": list(seeds),
            "model_seed": args.model_seed,
            "methods": list(methods),
            "metrics": metrics,
            "recipe": result["config"]["train"],
            "method_configs": result["config"]["method_configs"],
            "device": result["config"]["device_used"],
            "environment": environment(),
            "started_at": started,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **summary,
            "per_class": classes,
        }
        if args.out:
            write_result(args.out, payload)
        print(f"forget {result['forget_class_names']}: {classes[-1]['seconds']:.0f} s", flush=True)
    keys = [
        "forget_acc",
        "retain_acc",
        "probe_linear_forget",
        "probe_knn_forget",
        "cka_original_last",
        "cka_retrained_last",
        "mia_worst",
        "relearn_steps",
        "zrf",
        "tow",
        "seconds",
    ]
    print_table(payload, keys)


if __name__ == "__main__":
    try:
        main()
    except UnsirError as err:
        raise SystemExit(f"error: {err}") from None

"""The audit benchmark: every metric, inside the model included, for UNSIR, its noise ablations
and baselines against the retrained model; and whether the error-maximising noise changes any
of them beyond the seed spread. Prints tables, writes JSON (after each seed of each forget set,
so an interrupted run keeps what it measured and ``--resume`` goes on from the next seed;
``--redo METHODS`` measures some methods again on the runs kept, after a fix to them).

    python -m bench.audit --dataset cifar10 --model resnet18 --forget 3,5,9 --seeds 0,1,2 \\
        --out bench/results/cifar10_resnet18_audit.json

Each (forget class, seed) is one experiment (``unsir_core.experiment``): the original and the
retrained model (``--recipe``'s set, official by default; ``--model-seed``; trained once and
cached) and every method, all with ``--metrics`` (default: all). The JSON keeps, per forget
class, seed and model, the single-number figures (accuracies, relearn steps, MIA per attack, JS
to the retrained model, probe accuracies, CKA of the last two blocks, ZRF, ToW, seconds; the
full per-block CKA and the 2-D maps stay in ``--runs`` if given), their mean and standard
deviation over all runs, and the paired differences between UNSIR and each noise ablation
(same class, same seed: the same Dr_sub, the same noise draw and the same batch order), as raw
figures and as the change in distance to the retrained model, with paired t-tests corrected
for the number of figures tested (Holm), and UNSIR's own spread over seeds.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from bench.common import add_recipe_argument, base_parser, command, recipe_from, recipe_set, write_result
from unsir_core.errors import UnsirError
from unsir_core.evaluation import list_metrics, presentations, table_columns
from unsir_core.experiment import ExperimentConfig, run_experiment
from unsir_core.methods import parse_method_overrides
from unsir_core.provenance import environment
from unsir_core.runs import write_run
from unsir_core.runtime import resolve_device

METHODS = "unsir,unsir_random_noise,unsir_no_noise,finetune,neggrad"
ABLATIONS = ("unsir_random_noise", "unsir_no_noise")


def figures(entry: dict) -> dict[str, float]:
    """The single-number figures of one model's metrics (None where not measured): every column
    the metric registry declares (accuracies, each metric's, wall time), and the text notes
    beside them (e.g. which block a CKA figure is from; their keys end in ``_block``)."""
    out = {c.key: c.get(entry) for c in table_columns()}
    for present in presentations().values():
        if present.notes is not None:
            out.update(present.notes(entry))
    return out


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)


def _sd(values: list[float]) -> float:
    """The sample standard deviation (0 for a single value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def spread(values: list) -> dict[str, float] | None:
    values = [v for v in values if _number(v)]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": _sd(values), "n": len(values)}


def paired(pairs: list[tuple]) -> dict | None:
    """The paired differences a - b over ``pairs``: mean, standard deviation, standard error,
    a two-sided paired t-test p-value and its 95 % confidence interval."""
    from scipy import stats

    diffs = [a - b for a, b in pairs if _number(a) and _number(b)]
    if len(diffs) < 2:
        return None
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    se = sd / math.sqrt(len(diffs))
    half = stats.t.ppf(0.975, len(diffs) - 1) * se
    p = 1.0 if se == 0 and mean == 0 else float(stats.ttest_1samp(diffs, 0.0).pvalue) if se > 0 else 0.0
    return {"mean": mean, "std": sd, "se": se, "n": len(diffs), "ci95": [mean - half, mean + half], "p": p}


# Figures reported but not tested: wall time is not a property of the unlearned model.
NOT_TESTED = frozenset({"seconds"})


def holm(results: dict[str, dict | None], alpha: float = 0.05) -> None:
    """Mark each result ``significant`` by Holm's step-down correction over all of them but
    :data:`NOT_TESTED` (the figures of one comparison are tested together, so a few would pass
    by chance alone)."""
    tested = sorted(((r["p"], k) for k, r in results.items() if r and k not in NOT_TESTED), key=lambda pk: pk[0])
    still = True
    for i, (p, k) in enumerate(tested):
        still = still and p <= alpha / (len(tested) - i)
        results[k]["significant"] = still


def summarise(classes: list[dict]) -> dict:
    """Means over every (class, seed) run of each model's figures; and, per ablation, UNSIR
    minus the ablation paired by (class, seed) (runs where either failed are left out), both as
    raw figures and as the change in distance to the retrained model's figure
    (``|unsir - retrained| - |ablation - retrained|``: negative means UNSIR is closer), with
    Holm-corrected paired t-tests, and UNSIR's own spread over seeds within a class.

    The runs of one class share the original model and the class, so they are not independent
    samples of "a class to forget": ``by_class`` repeats the raw test on each class's mean
    over seeds (n = the number of classes; little power with three, but no pseudo-replication).
    Standard deviations are sample ones."""
    runs: dict[tuple, dict[str, dict]] = {}  # (class, seed) -> model -> figures
    for c in classes:
        for seed_runs in c["per_seed"]:
            runs[(tuple(c["forget"]), seed_runs["seed"])] = seed_runs["models"]
    names = list(dict.fromkeys(name for models in runs.values() for name in models))
    keys = list(
        dict.fromkeys(k for models in runs.values() for f in models.values() for k in f if not k.endswith("_block"))
    )
    models = {n: {k: spread([m[n].get(k) for m in runs.values() if n in m]) for k in keys} for n in names}

    def seed_sd(name: str, key: str) -> float | None:
        """UNSIR's (or any model's) standard deviation over seeds, averaged over the classes."""
        per_class = {}
        for (forget, _), m in runs.items():
            if name in m and _number(m[name].get(key)):
                per_class.setdefault(forget, []).append(m[name][key])
        sds = [_sd(v) for v in per_class.values() if len(v) > 1]
        return statistics.fmean(sds) if sds else None

    comparisons = {}
    for ablation in ABLATIONS:
        both = [m for m in runs.values() if "unsir" in m and ablation in m]
        if "unsir" not in names or ablation not in names or len(both) < 2:
            continue
        raw = {k: paired([(m["unsir"].get(k), m[ablation].get(k)) for m in both]) for k in keys}
        gap = {
            k: paired(
                [
                    (abs(m["unsir"][k] - m["retrained"][k]), abs(m[ablation][k] - m["retrained"][k]))
                    for m in both
                    if "retrained" in m and all(_number(x.get(k)) for x in (m["unsir"], m[ablation], m["retrained"]))
                ]
            )
            for k in keys
        }
        by_class = {}
        for k in keys:
            means = {}
            for (forget, _), m in runs.items():
                if "unsir" in m and ablation in m and _number(m["unsir"].get(k)) and _number(m[ablation].get(k)):
                    means.setdefault(forget, []).append((m["unsir"][k], m[ablation][k]))
            by_class[k] = paired(
                [(statistics.fmean(a for a, _ in v), statistics.fmean(b for _, b in v)) for v in means.values()]
            )
        holm(raw)
        holm(gap)
        holm(by_class)
        comparisons[ablation] = {
            "difference": raw,
            "difference_by_class": by_class,
            "gap_to_retrained": gap,
            "unsir_seed_sd": {k: seed_sd("unsir", k) for k in keys},
        }
    return {"models": models, "unsir_minus": comparisons, **closest_to_retrained(runs, names, keys)}


def closest_to_retrained(runs: dict[tuple, dict[str, dict]], names: list[str], keys: list[str]) -> dict:
    """Per method and figure, the mean over runs of ``|method - retrained|`` (the retrained
    model of the same class; runs where either is missing left out) with its spread; and per
    figure, the methods with the smallest mean gap (``closest``, all of them when tied) among those measured on every
    run that any was measured on. Wall time is not a distance."""
    gaps = {}
    for name in names:
        if name in ("original", "retrained"):
            continue
        gaps[name] = {
            k: spread(
                [
                    abs(m[name][k] - m["retrained"][k])
                    for m in runs.values()
                    if name in m and "retrained" in m and _number(m[name].get(k)) and _number(m["retrained"].get(k))
                ]
            )
            for k in keys
            if k not in NOT_TESTED
        }
    closest = {}
    for k in keys:
        # a method that failed on some runs is not ranked: its mean would skip the hard ones
        most = max((g[k]["n"] for g in gaps.values() if g.get(k)), default=0)
        ranked = sorted((g[k]["mean"], name) for name, g in gaps.items() if g.get(k) and g[k]["n"] == most)
        if ranked:  # every method tied at the smallest gap (e.g. all that forget to 0 %), not one by name
            best = ranked[0][0]
            closest[k] = {"methods": [name for gap, name in ranked if gap - best <= 1e-12], "gap": best}
    return {"to_retrained": gaps, "closest": closest}


TABLE_KEYS = [
    "forget_acc",
    "retain_acc",
    "probe_linear_forget",
    "probe_knn_forget",
    "cka_original_features",
    "cka_retrained_features",
    "mia_worst",
    "relearn_steps",
    "zrf",
    "tow",
    "seconds",
]


def print_table(summary: dict, keys: list[str]) -> None:
    print(f"\n{'model':<20}" + "".join(f"{k[:14]:>16}" for k in keys))
    for name, figs in summary["models"].items():
        cells = [f"{figs[k]['mean']:.3f}±{figs[k]['std']:.3f}" if figs.get(k) else "-" for k in keys]
        print(f"{name:<20}" + "".join(f"{c:>16}" for c in cells))
    for ablation, comparison in summary["unsir_minus"].items():
        diffs = comparison["difference"]
        cells = [
            (f"{d['mean']:+.3f}{'*' if d.get('significant') else ' '}" if (d := diffs.get(k)) else "-") for k in keys
        ]
        print(f"{'unsir - ' + ablation[6:]:<20}" + "".join(f"{c:>16}" for c in cells))
    print("(unsir - ablation: mean paired difference over (class, seed); * significant, paired t-test, Holm-corrected)")
    gaps = summary.get("to_retrained") or {}
    if gaps:
        shown = [k for k in keys if k not in NOT_TESTED]
        print(f"\n{'|x - retrained|':<20}" + "".join(f"{k[:14]:>16}" for k in shown) + f"{'seconds':>16}")
        for name, figs in gaps.items():
            cells = [f"{figs[k]['mean']:.3f}" if figs.get(k) else "-" for k in shown]
            secs = (summary["models"].get(name) or {}).get("seconds")
            print(
                f"{name:<20}"
                + "".join(f"{c:>16}" for c in cells)
                + (f"{secs['mean']:>16.1f}" if secs else f"{'-':>16}")
            )
        print(
            "closest to the retrained model: "
            + "; ".join(
                f"{k} {', '.join(c['methods'])} ({c['gap']:.3f})" for k, c in summary["closest"].items() if k in shown
            )
        )


def resummarise(path: str) -> None:
    """Recompute the summary of the result file at ``path`` from its ``per_class`` figures."""
    payload = json.loads(Path(path).read_text())
    payload.update(summarise(payload["per_class"]))
    payload["summarised_by"] = {"command": command(), "git_commit": environment()["git_commit"]}
    write_result(path, payload)
    print_table(payload, TABLE_KEYS)


def experiment_config(args, forget: str, seeds, methods, metrics) -> ExperimentConfig:
    """The experiment that audits one forget class."""
    return ExperimentConfig(
        dataset=args.dataset,
        model=args.model,
        forget=(forget,),
        seeds=seeds,
        model_seed=args.model_seed,
        device=args.device,
        data_dir=args.data_dir,
        methods=methods,
        metrics=tuple(metrics),
        recipes=recipe_set(args.recipe),
        train=recipe_from(args.dataset, args.model, args.recipe),
        method_overrides=parse_method_overrides(args.set),
    )


def configs_record(cfg: ExperimentConfig) -> dict:
    """The methods' configs as a result file records them."""
    return {name: asdict(c) for name, c in cfg.unlearning_configs().items()}


def resumed(path: str, args, seeds, methods, metrics, redo=()) -> tuple[list[dict], str, list[str], dict]:
    """The per-class results, start time, commands and whole payload of the result file at
    ``path``, if it was made with the settings given now (else an error naming the first
    difference; the configs of the methods in ``redo``, about to be measured again, may differ)."""
    old = json.loads(Path(path).read_text())
    now = {
        "dataset": args.dataset,
        "model": args.model,
        "seeds": list(seeds),
        "model_seed": args.model_seed,
        "methods": list(methods),
        "metrics": list(metrics),
        "recipe": asdict(recipe_from(args.dataset, args.model, args.recipe)),
        "recipes": recipe_set(args.recipe),
        # the methods' resolved configs (defaults of the recipe set, --set changes): a class audited
        # with other hyper-parameters must not be averaged with these
        **{
            f"{name}.{field}": value
            for name, config in configs_record(experiment_config(args, "0", seeds, methods, metrics)).items()
            if name not in redo
            for field, value in json.loads(json.dumps(config)).items()
        },
    }
    recorded = {**old, **{f"{n}.{f}": v for n, c in old.get("method_configs", {}).items() for f, v in c.items()}}
    for key, value in now.items():
        was = recorded.get(key, value if key == "recipes" else None)  # files older than recipe sets lack it
        if was != value:
            raise UnsirError(f"--resume: {path} was made with {key} {was!r}, not {value!r}")
    commit = (old.get("environment") or {}).get("git_commit")
    classes = [{**entry, "git_commit": entry.get("git_commit", commit)} for entry in old["per_class"]]
    return classes, old["started_at"], [*old.get("earlier_commands", []), old["command"]], old


def seeds_done(entry: dict | None) -> list[int]:
    """The seeds a forget class's entry holds (none for a class not yet run)."""
    return [s["seed"] for s in entry["per_seed"]] if entry else []


def add_seed(entry: dict | None, classes: list[dict], result: dict, seconds: float) -> dict:
    """Add one seed's experiment (``result``, a single-seed ``run_experiment``) to its forget
    class's entry, creating the entry (appended to ``classes``) for the class's first seed. Each
    seed records its own wall time and commit (an interrupted class may be finished later); the
    class's ``seconds`` is their sum."""
    commit = environment()["git_commit"]
    if entry is None:
        entry = {
            "forget": result["forget_classes"],
            "forget_names": result["forget_class_names"],
            "seconds": 0.0,
            "git_commit": commit,
            "errors": {},
            "per_seed": [],
        }
        classes.append(entry)
    for s in result["per_seed"]:
        models = {name: figures(e) for name, e in s["models"].items()}
        entry["per_seed"].append(
            {
                "seed": s["seed"],
                "seconds": seconds,
                "git_commit": commit,
                "references": references(s["models"]),
                "models": models,
            }
        )
    entry["seconds"] += seconds
    for name, err in result["errors"].items():
        entry["errors"].setdefault(name, err)
    return entry


REFERENCES = ("original", "retrained")


def references(models: dict) -> dict[str, str]:
    """The weights' SHA-256 of a run's original and retrained models (``experiment.py`` records
    it): what identifies them, where their figures may not (an evaluation on CUDA can differ by
    an image between two runs of the same weights)."""
    return {r: models[r]["weights_sha256"] for r in REFERENCES if (models.get(r) or {}).get("weights_sha256")}


def same_references(kept: dict, now: dict, where: str) -> None:
    """Refuse to put runs measured against other models side by side: the original and retrained
    models of the run ``now`` must be ``kept``'s (a kept run of the same class, as the cache may
    have been emptied between them), identified by their weights' hash. A run recorded before
    the hashes were is compared on its test forget and retained accuracy, exactly."""
    for reference in REFERENCES:
        was, is_ = (kept.get("references") or {}).get(reference), (now.get("references") or {}).get(reference)
        if was and is_:
            if was != is_:
                raise UnsirError(
                    f"{where}: the {reference} model's weights (sha256 {is_[:12]}) are not those of the kept runs "
                    f"({was[:12]}): it is not the model the file measured (retrained differently, or another "
                    "cache); nothing was written"
                )
            continue
        for key in ("forget_acc", "retain_acc"):
            was, is_ = (kept["models"].get(reference) or {}).get(key), (now["models"].get(reference) or {}).get(key)
            if was != is_:
                raise UnsirError(
                    f"{where}: the {reference} model gives {key} {is_}, not the kept runs' {was}: it is not the "
                    "model the file measured (retrained differently, or another cache); nothing was written"
                )


def redo_seed(args, entry: dict, run: dict, redo: tuple[str, ...], metrics) -> float:
    """Measure the methods ``redo`` again on one kept (class, seed) ``run`` of ``entry`` (after a
    fix to them or a change of their defaults) and put their figures in place of the old ones,
    recording the commit in ``run["redone"]``. The original and retrained models are evaluated
    again too and must give the kept figures (else the cached models changed and the run is
    refused). Returns the wall time."""
    cfg = experiment_config(args, str(entry["forget"][0]), (run["seed"],), redo, metrics)
    t = time.perf_counter()
    result, _ = run_experiment(cfg)
    measured = result["per_seed"][0]["models"]
    models = {name: figures(e) for name, e in measured.items()}
    now = {"models": models, "references": references(measured)}
    same_references(run, now, f"--redo: {entry['forget_names']} seed {run['seed']}")
    run.setdefault("references", now["references"])
    commit = environment()["git_commit"]
    for name in redo:
        if name in models:  # in place: the models keep their order in the file and its tables
            run["models"][name] = models[name]
            entry["errors"].pop(name, None)
        else:
            run["models"].pop(name, None)
            entry["errors"][name] = result["errors"].get(name, "not measured")
        run.setdefault("redone", {})[name] = commit
    return time.perf_counter() - t


def result_payload(args, seeds, methods, metrics, started, commands, classes) -> dict:
    """The result file's content: settings, environment, summary and the per-class figures."""
    cfg = experiment_config(args, "0", seeds, methods, metrics)
    return {
        "benchmark": f"{args.dataset}_{args.model}_audit",
        "command": command(),
        "earlier_commands": commands,
        "dataset": args.dataset,
        "model": args.model,
        "seeds": list(seeds),
        "model_seed": args.model_seed,
        "methods": list(methods),
        "metrics": metrics,
        "recipes": recipe_set(args.recipe),
        "recipe": asdict(cfg.recipe()),
        "method_configs": json.loads(json.dumps(configs_record(cfg))),
        "device": str(resolve_device(args.device)),
        "environment": environment(),
        "started_at": started,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **summarise(classes),
        "per_class": classes,
    }


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
    add_recipe_argument(p)
    p.add_argument("--runs", help="also store each (forget class, seed)'s metrics.json as a run in this folder")
    p.add_argument("--out", help="JSON file for the results")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the result file --out: keep the (forget class, seed) runs it holds (each records the "
        "commit that measured it) and run the others; the settings must be the file's",
    )
    p.add_argument(
        "--redo",
        default="",
        metavar="METHODS",
        help="with --resume: measure these methods (comma-separated) again on every kept (class, seed) run, "
        "replacing their figures (after a fix to them or a change of their defaults; their configs may differ "
        "from the file's)",
    )
    p.add_argument(
        "--summarise",
        metavar="JSON",
        help="no experiment: recompute the summary of this result file from its per-class figures (after a change "
        "to the statistics), recording the command and commit that did it",
    )
    args = p.parse_args()
    if args.summarise:
        resummarise(args.summarise)
        return

    metrics = list_metrics() if args.metrics == "all" else [m for m in args.metrics.split(",") if m]
    seeds = tuple(int(s) for s in args.seeds.split(","))
    methods = tuple(m for m in args.methods.split(",") if m)
    redo = tuple(m for m in args.redo.split(",") if m)
    if redo and not args.resume:
        raise UnsirError("--redo measures methods again in the file --resume continues")
    if unknown := [m for m in redo if m not in methods]:
        raise UnsirError(f"--redo: {', '.join(unknown)} not in --methods")
    classes, started, commands = [], time.strftime("%Y-%m-%dT%H:%M:%S%z"), []
    payload: dict = {}
    if args.resume:
        if not args.out:
            raise UnsirError("--resume continues the file given by --out")
        if Path(args.out).exists():
            classes, started, commands, payload = resumed(args.out, args, seeds, methods, metrics, redo)
            payload = {**payload, **summarise(classes), "per_class": classes}
    # what was written into the file by hand after its runs (report.py shows it) stays with them
    kept = {key: payload[key] for key in ("caveats",) if key in payload}

    def record() -> dict:
        out = {**result_payload(args, seeds, methods, metrics, started, commands, classes), **kept}
        if args.out:
            write_result(args.out, out)
        return out

    for entry in classes if redo else []:
        for run in entry["per_seed"]:
            seconds = redo_seed(args, entry, run, redo, metrics)
            payload = record()
            print(f"forget {entry['forget_names']} seed {run['seed']}: {', '.join(redo)} again, {seconds:.0f} s")
    for forget in [c.strip() for c in args.forget.split(",") if c.strip()]:
        entry = next((c for c in classes if forget in {str(x) for x in [*c["forget"], *c["forget_names"]]}), None)
        left = [s for s in seeds if s not in seeds_done(entry)]
        if not left:
            print(f"forget {forget}: kept from {args.out}", flush=True)
            continue
        if entry is not None:
            print(f"forget {forget}: seeds {seeds_done(entry)} kept from {args.out}, running {left}", flush=True)
        for seed in left:
            cfg = experiment_config(args, forget, (seed,), methods, metrics)
            t = time.perf_counter()
            result, _ = run_experiment(cfg)
            entry = add_seed(entry, classes, result, time.perf_counter() - t)
            # against the class's first run (itself for a new class), before anything is written
            same_references(entry["per_seed"][0], entry["per_seed"][-1], f"--resume: {forget} seed {seed}")
            if args.runs:
                write_run(f"{args.runs}/{args.dataset}-{args.model}-forget{forget}-seed{seed}", result)
            payload = record()
            print(
                f"forget {result['forget_class_names']} seed {seed}: {entry['per_seed'][-1]['seconds']:.0f} s",
                flush=True,
            )
    print_table(payload, TABLE_KEYS)


if __name__ == "__main__":
    try:
        main()
    except UnsirError as err:
        raise SystemExit(f"error: {err}") from None

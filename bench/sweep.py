"""Sweep an unlearning method's hyper-parameters on a cached original model; print a table,
write JSON.

Example (CIFAR-10 ResNet18, classes 3 and 5, two UNSIR impair learning rates):

    python -m bench.sweep --dataset cifar10 --model resnet18 --classes 3,5 \
        --grid impair_lr=0.005,0.01 --grid repair_lr=0.001 --out bench/results/sweep.json

    python -m bench.sweep --method neggrad --grid ascent_weight=0.2,0.5 --grid epochs=1,2

Named points instead of a grid compare levers and presets, each against the same runs
(``preset=NAME`` starts a point from one of the method's presets):

    python -m bench.sweep --recipe fast --classes 3,5,9 --seeds 0 \
        --point "tuned:" --point "bf16:precision=bf16" --point "official:preset=official"

Every grid point (or named point) runs the method (any name from ``python -m unsir_core
list``) once per class and seed, on the same original model (trained and cached on first use
with the data set's recipe), and reports test forget / retain accuracy against the original's
and the unlearning wall time. Medians over classes and seeds are shown, and the worst run.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, replace

from bench.common import (
    add_recipe_argument,
    base_parser,
    command,
    named_changes,
    recipe_from,
    recipe_set,
    time_retraining,
    write_result,
)
from unsir_core.cli import int_list
from unsir_core.config import typed_value, with_overrides
from unsir_core.datasets import load_dataset
from unsir_core.errors import UnsirError
from unsir_core.methods import TUNED, method_config, unlearn
from unsir_core.metrics import split_accuracy
from unsir_core.model_cache import trained_model
from unsir_core.paths import default_cache_dir
from unsir_core.provenance import environment
from unsir_core.runtime import resolve_device
from unsir_core.train import predict


def parse_grid(items: list[str], base) -> dict[str, list]:
    grid = {}
    for item in items:
        name, _, values = item.partition("=")
        grid[name] = [typed_value(base, name, v) for v in values.split(",")]
    return grid


def parse_point(item: str, method: str, dataset: str, model: str, recipes: str) -> tuple[str, object]:
    """``NAME:FIELD=VALUE;FIELD=VALUE`` -> (NAME, config): the method's tuned config for the
    recipe set (or the preset named by ``preset=...``) with the changes, typed as on the
    command line."""
    name, items = named_changes(item, "--point")
    presets = [i.partition("=")[2].strip() for i in items if i.partition("=")[0].strip() == "preset"]
    base = method_config(method, dataset, model, preset=presets[-1] if presets else TUNED, recipes=recipes)
    return name, with_overrides(base, [i for i in items if i.partition("=")[0].strip() != "preset"])


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--method", default="unsir", help="unlearning method to sweep (default unsir)")
    p.add_argument("--classes", default="3", help="forget classes to try, one at a time (comma-separated)")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, default=0, help="unlearning seed (Dr_sub, noise, batch order)")
    seed.add_argument("--seeds", help="several unlearning seeds (comma-separated)")
    p.add_argument("--model-seed", type=int, default=0, help="seed of the original model")
    p.add_argument(
        "--preset", default=TUNED, help="starting config: tuned, or one of the method's presets (UNSIR: fast, official)"
    )
    p.add_argument("--grid", action="append", default=[], help="FIELD=v1,v2,... (repeatable)")
    p.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="NAME:FIELD=VALUE;...",
        help="a named config instead of a grid (repeatable); preset=NAME starts it from a preset",
    )
    add_recipe_argument(p)
    p.add_argument(
        "--time-retrain",
        default="",
        metavar="SET,...",
        help="also time retraining with these recipe sets (e.g. official,fast), for speed-ups measured in this "
        "run: a cached retrained model's recorded time, else --retrain-epochs timed epochs scaled",
    )
    p.add_argument("--retrain-epochs", type=int, default=1, help="epochs timed per recipe set without a cached model")
    p.add_argument("--out", help="JSON file for the results")
    args = p.parse_args()

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_dir)
    base = method_config(args.method, args.dataset, args.model, preset=args.preset, recipes=recipe_set(args.recipe))
    recipe = recipe_from(args.dataset, args.model, args.recipe)
    if args.point and args.grid:
        raise UnsirError("--point and --grid do not mix: name each config as a point")
    if args.point and args.preset != TUNED:
        raise UnsirError("--preset does not apply to --point: start a point from a preset with preset=NAME")
    if args.point:
        points = [
            parse_point(item, args.method, args.dataset, args.model, recipe_set(args.recipe)) for item in args.point
        ]
    else:
        grid = parse_grid(args.grid, base)
        points = []
        for values in itertools.product(*grid.values()) if grid else [()]:
            overrides = dict(zip(grid, values, strict=True))
            points.append(
                (",".join(f"{k}={v}" for k, v in overrides.items()) or "defaults", replace(base, **overrides))
            )
    if len({label for label, _ in points}) < len(points):
        raise UnsirError("--point: each point needs its own name")
    classes = int_list(args.classes, "--classes")
    seeds = int_list(args.seeds, "--seeds") if args.seeds else [args.seed]
    changes = [item for item in args.recipe if "=" in item]  # the original's recipe changes apply to each set
    retrain_recipes = {
        n: recipe_from(args.dataset, args.model, [n, *changes]) for n in args.time_retrain.split(",") if n
    }
    original, _ = trained_model(
        data, args.model, recipe, range(data.num_classes), device, seed=args.model_seed, cache_dir=default_cache_dir()
    )
    test_logits = predict(original, data.test.images, data.normalize, device)
    retrain = {}
    for name, retrain_recipe in retrain_recipes.items():
        retrain[name] = time_retraining(
            data,
            args.model,
            retrain_recipe,
            [(c,) for c in classes],
            device,
            seed=args.model_seed,
            cache_dir=default_cache_dir(),
            epochs=args.retrain_epochs,
        )
        print(f"retraining, {name} recipe: {retrain[name]['seconds']:.0f} s", flush=True)

    rows = []
    print(
        f"{'config':<48} {'class':>5} {'seed':>4} {'forget':>7} {'retain':>7} {'d_retain':>8} {'seconds':>7}",
        flush=True,
    )
    for label, cfg in points:
        for c, seed in itertools.product(classes, seeds):
            o_forget, o_retain = split_accuracy(test_logits, data.test.labels, [c])
            try:
                result = unlearn(args.method, original, args.model, data, (c,), device, cfg, seed=seed)
            except UnsirError as err:  # e.g. a calibration that found no setting: recorded, the sweep goes on
                rows.append({"config": asdict(cfg), "label": label, "class": c, "seed": seed, "error": str(err)})
                print(f"{label:<48} {c:>5} {seed:>4} error: {err}", flush=True)
                continue
            logits = predict(result.model, data.test.images, data.normalize, device)
            forget, retain = split_accuracy(logits, data.test.labels, [c])
            row = {
                "config": asdict(cfg),
                "label": label,
                "class": c,
                "seed": seed,
                "forget_acc": forget,
                "retain_acc": retain,
                "original_forget_acc": o_forget,
                "original_retain_acc": o_retain,
                "seconds": result.seconds,
                "phases": result.phases,
                "history": result.history,  # e.g. UNSIR's epochs, the alphas Fisher's search tried
            }
            rows.append(row)
            print(
                f"{label:<48} {c:>5} {seed:>4} {forget:>7.4f} {retain:>7.4f} {retain - o_retain:>+8.4f} "
                f"{result.seconds:>7.1f}",
                flush=True,
            )
        mine = [r for r in rows if r["label"] == label and "error" not in r]
        if not mine:
            continue
        print(
            f"{label:<48} {'med':>5} {'':>4} {statistics.median(r['forget_acc'] for r in mine):>7.4f} "
            f"{statistics.median(r['retain_acc'] for r in mine):>7.4f} "
            f"{statistics.median(r['retain_acc'] - r['original_retain_acc'] for r in mine):>+8.4f} "
            f"{statistics.median(r['seconds'] for r in mine):>7.1f}",
            flush=True,
        )
    if args.out:
        payload = {
            "command": command(),
            "dataset": args.dataset,
            "method": args.method,
            "model": args.model,
            "seed": seeds[0],
            "seeds": seeds,
            "model_seed": args.model_seed,
            "recipes": recipe_set(args.recipe),
            "recipe": asdict(recipe),
            "retrain": retrain,
            "device": str(device),
            "environment": environment(),
            "rows": rows,
        }
        write_result(args.out, payload)


if __name__ == "__main__":
    try:
        main()
    except UnsirError as err:
        raise SystemExit(f"error: {err}") from None

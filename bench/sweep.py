"""Sweep an unlearning method's hyper-parameters on a cached original model; print a table,
write JSON.

Example (CIFAR-10 ResNet18, classes 3 and 5, two UNSIR impair learning rates):

    python bench/sweep.py --dataset cifar10 --model resnet18 --classes 3,5 \
        --grid impair_lr=0.005,0.01 --grid repair_lr=0.001 --out bench/results/sweep.json

    python bench/sweep.py --method neggrad --grid ascent_weight=0.2,0.5 --grid epochs=1,2

Every grid point runs the method (any name from ``python -m unsir_core list``) once per class
(seeded), on the same original model (trained and cached on first use with the data set's
recipe), and reports test forget / retain accuracy against the original's and the unlearning
wall time. Medians over classes are shown.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, replace

from common import add_recipe_argument, base_parser, command, recipe_from, write_result

from unsir_core.config import typed_value
from unsir_core.datasets import load_dataset
from unsir_core.errors import UnsirError
from unsir_core.methods import method_config, unlearn
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


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--method", default="unsir", help="unlearning method to sweep (default unsir)")
    p.add_argument("--classes", default="3", help="forget classes to try, one at a time (comma-separated)")
    p.add_argument("--seed", type=int, default=0, help="unlearning seed (Dr_sub, noise, batch order)")
    p.add_argument("--model-seed", type=int, default=0, help="seed of the original model")
    p.add_argument(
        "--preset", default="tuned", help="starting config: tuned, or one of the method's presets (UNSIR: official)"
    )
    p.add_argument("--grid", action="append", default=[], help="FIELD=v1,v2,... (repeatable)")
    add_recipe_argument(p)
    p.add_argument("--out", help="JSON file for the results")
    args = p.parse_args()

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_dir)
    base = method_config(args.method, args.dataset, args.model, preset=args.preset)
    recipe = recipe_from(args.dataset, args.model, args.recipe)
    original, _ = trained_model(
        data, args.model, recipe, range(data.num_classes), device, seed=args.model_seed, cache_dir=default_cache_dir()
    )
    test_logits = predict(original, data.test.images, data.normalize, device)
    grid = parse_grid(args.grid, base)
    classes = [int(c) for c in args.classes.split(",")]

    rows = []
    print(f"{'config':<48} {'class':>5} {'forget':>7} {'retain':>7} {'d_retain':>8} {'seconds':>7}", flush=True)
    for values in itertools.product(*grid.values()) if grid else [()]:
        overrides = dict(zip(grid, values, strict=True))
        cfg = replace(base, **overrides)
        label = ",".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
        for c in classes:
            o_forget, o_retain = split_accuracy(test_logits, data.test.labels, [c])
            result = unlearn(args.method, original, args.model, data, (c,), device, cfg, seed=args.seed)
            logits = predict(result.model, data.test.images, data.normalize, device)
            forget, retain = split_accuracy(logits, data.test.labels, [c])
            row = {
                "config": asdict(cfg),
                "label": label,
                "class": c,
                "forget_acc": forget,
                "retain_acc": retain,
                "original_forget_acc": o_forget,
                "original_retain_acc": o_retain,
                "seconds": result.seconds,
                "phases": result.phases,
            }
            rows.append(row)
            print(
                f"{label:<48} {c:>5} {forget:>7.4f} {retain:>7.4f} {retain - o_retain:>+8.4f} {result.seconds:>7.1f}",
                flush=True,
            )
        mine = [r for r in rows if r["label"] == label]
        print(
            f"{label:<48} {'med':>5} {statistics.median(r['forget_acc'] for r in mine):>7.4f} "
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
            "seed": args.seed,
            "model_seed": args.model_seed,
            "recipe": asdict(recipe),
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

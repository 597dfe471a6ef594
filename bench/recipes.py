"""Training recipes side by side: wall time and test accuracy of the original model trained
with each recipe set (official, fast) on one machine, in one run.

A recipe named in ``--timing-epochs NAME=N`` is trained for N epochs only and its time scaled
to its full epoch count (its accuracy is then not measured here: say where it comes from).
Every fully trained model goes to the model cache, so that later benchmarks reuse it.

    python -m bench.recipes --dataset cifar10 --models resnet18 --recipes fast,official \\
        --timing-epochs official=2 --out bench/results/recipes_cifar10.json
    python -m bench.recipes --dataset digits --recipes official --variant 2ep:epochs=2 \\
        --variant 4ep:epochs=4 --seeds 0,1,2 --out bench/results/recipes_digits_resnet18.json

``--variant NAME:FIELD=VALUE;...`` adds a recipe: the first set's with the changes (an ablation
of one ingredient). With several ``--seeds`` every recipe trains one model per seed; the report
gives the median time and the mean and lowest accuracy.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from bench.common import base_parser, command, named_changes, timed_epochs, write_result
from unsir_core.cli import int_list
from unsir_core.config import with_overrides
from unsir_core.datasets import load_dataset
from unsir_core.model_cache import trained_model
from unsir_core.paths import default_cache_dir
from unsir_core.provenance import environment
from unsir_core.recipes import default_recipe
from unsir_core.runtime import resolve_device
from unsir_core.train import accuracy, predict


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--models", help="comma-separated architectures (default: --model)")
    p.add_argument("--recipes", default="fast,official", help="comma-separated recipe sets (default fast,official)")
    p.add_argument("--seed", type=int, default=0, help="model seed (default 0)")
    p.add_argument("--seeds", help="several model seeds (comma-separated; overrides --seed)")
    p.add_argument(
        "--variant", action="append", default=[], help="NAME:FIELD=VALUE;...: the first recipe set's recipe, changed"
    )
    p.add_argument(
        "--timing-epochs", action="append", default=[], help="NAME=N: time N epochs of recipe set NAME and scale"
    )
    p.add_argument("--out", required=True, help="result JSON")
    args = p.parse_args()
    timing = {k: int(v) for k, v in (item.split("=", 1) for item in args.timing_epochs)}
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_dir)
    sets = args.recipes.split(",")
    seeds = int_list(args.seeds, "--seeds") if args.seeds else [args.seed]
    variants = [named_changes(item, "--variant") for item in args.variant]
    rows = []
    for model_name in (args.models or args.model).split(","):
        recipes = {name: default_recipe(args.dataset, model_name, name) for name in sets}
        recipes |= {name: with_overrides(recipes[sets[0]], changes) for name, changes in variants}
        for seed in seeds:
            for name, recipe in recipes.items():
                if name in timing:
                    row = timed_epochs(data, model_name, recipe, range(data.num_classes), timing[name], device, seed)
                    row["test_accuracy"] = None
                else:
                    row = train_and_test(data, model_name, recipe, device, seed)
                rows.append({"model": model_name, "recipes": name, "seed": seed, "recipe": asdict(recipe), **row})
                acc = "not measured" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}"
                scaled = " (scaled)" if row["scaled"] else ""
                print(
                    f"{model_name:<12} {name:<9} seed {seed} {row['seconds']:8.1f} s{scaled:<9}  test acc {acc}",
                    flush=True,
                )
    write_result(
        args.out,
        {
            "benchmark": "recipes",
            "command": command(),
            "dataset": args.dataset,
            "seed": seeds[0],
            "seeds": seeds,
            "device": device.type,
            "environment": environment(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "rows": rows,
        },
    )


def train_and_test(data, model_name, recipe, device, seed) -> dict:
    """The model of ``recipe`` and ``seed`` from the cache, or trained now: its recorded training
    time and its test accuracy."""
    model, meta = trained_model(
        data, model_name, recipe, range(data.num_classes), device, seed=seed, cache_dir=default_cache_dir()
    )
    logits = predict(model, data.test.images, data.normalize, device)
    return {
        "seconds": meta["seconds"],
        "epochs": recipe.epochs,
        "scaled": False,
        "test_accuracy": accuracy(logits, data.test.labels),
        "checkpoint": meta["checkpoint"],
        "cached": meta["cached"],
    }


if __name__ == "__main__":
    main()

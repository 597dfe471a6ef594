"""Command line: ``python -m unsir_core {experiment,train,list} ...``.

Builds the typed configs from argparse and calls the core; user errors (UnsirError) print
one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from .checkpoints import default_cache_dir
from .config import knobs
from .data import list_datasets, load_dataset, resolve_classes, retained_classes
from .errors import UnsirError
from .experiment import ExperimentConfig, dataset_options, run_experiment, trained_model, write_results
from .methods import get_method, list_methods, method_knobs
from .models import list_models
from .runs import list_runs
from .train import RECIPES, default_recipe, resolve_device
from .unsir import UnsirConfig, default_unsir

_RENAMED = {"batch_size": "unsir_batch_size"}  # avoid a clash with training's batch size


class TqdmProgress:
    """A ``ProgressFn`` that shows one tqdm bar per phase (on stderr)."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.bar: tqdm | None = None
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.bar is None or phase != self.phase or done < self.bar.n or total != self.bar.total:
            self.close()
            self.bar = tqdm(
                total=total, desc=f"{phase:>8}", unit="step", leave=True, disable=self.disable, file=sys.stderr
            )
            self.phase = phase
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", required=True, choices=list_datasets(), help="data set (digits is embedded and offline)"
    )
    p.add_argument("--model", required=True, choices=list_models(), help="architecture")
    p.add_argument(
        "--data-dir",
        help="data directory; for imagefolder the folder of class sub-folders "
        "(default: $UNSIR_DATA_DIR, else ~/.cache/unsir/data)",
    )
    p.add_argument("--cache-dir", help="checkpoint cache (default: $UNSIR_CACHE_DIR, else ~/.cache/unsir/checkpoints)")
    p.add_argument("--seed", type=int, default=0, help="seed of model init, batch order, Dr_sub and noise (default 0)")
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="auto: CUDA, then Apple MPS, then CPU (default auto)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="training epochs of the original and retrained models "
        "(default: the recipe's, e.g. 40 for CIFAR-10 ResNet18)",
    )
    p.add_argument(
        "--image-size", type=int, default=32, help="image side in pixels for digits and imagefolder (default 32)"
    )
    p.add_argument("--pretrained", action="store_true", help="start training from torchvision ImageNet weights")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_unsir(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("UNSIR hyper-parameters (override the preset)")
    g.add_argument(
        "--preset",
        choices=["tuned", "official"],
        default="tuned",
        help="tuned: this project's defaults for the data set and model; official: the paper "
        "notebook's values (default tuned)",
    )
    for name, default, help_text in knobs(UnsirConfig):
        flag = "--" + _RENAMED.get(name, name).replace("_", "-")
        g.add_argument(
            flag, dest=name, type=type(default), default=None, help=f"{help_text} (CIFAR default: {default})"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unsir_core", description="Class unlearning with UNSIR, zero-glance."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    exp = sub.add_parser(
        "experiment",
        help="train/load original and retrained models, unlearn with UNSIR, write metrics.json",
        description="Train or load the original model and the retrained gold standard, unlearn the "
        "forget classes with UNSIR (and any other --methods), measure every model and write "
        "OUT/metrics.json and OUT/<method>.safetensors.",
    )
    _add_common(exp)
    exp.add_argument(
        "--forget", required=True, help="forget classes: ids or names, comma-separated (e.g. 3 or 2,8 or cat)"
    )
    exp.add_argument("--out", required=True, help="output directory for metrics.json and the unlearned checkpoint")
    exp.add_argument(
        "--methods",
        default="unsir",
        help=f"comma-separated unlearning methods to compare (default unsir); any of: {', '.join(list_methods())}",
    )
    exp.add_argument("--seeds", help="comma-separated seeds (e.g. 0,1,2): every method per seed, mean and std reported")
    exp.add_argument(
        "--metrics",
        default=",".join(ExperimentConfig.metrics),
        help="metrics beyond accuracy, comma-separated, or 'accuracy' for accuracy only "
        f"(default {','.join(ExperimentConfig.metrics)})",
    )
    exp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="change a method's hyper-parameter, e.g. --set neggrad.lr=0.005 (repeatable)",
    )
    exp.add_argument(
        "--model-seed",
        type=int,
        help="train (or load) one original and one retrained model with this seed for every seed in --seeds, "
        "so that the spread is that of the unlearning methods alone (default: each seed trains its own)",
    )
    exp.add_argument(
        "--no-retrain", action="store_true", help="skip the retrained gold standard (saves a full training)"
    )
    _add_unsir(exp)

    tr = sub.add_parser(
        "train", help="train (or find in the cache) the original model, or the retrained one with --forget"
    )
    _add_common(tr)
    tr.add_argument("--forget", help="train the retrained model without these classes instead of the original")

    sub.add_parser("list", help="list data sets, models, methods and training recipes")

    runs = sub.add_parser("runs", help="list the stored runs under a directory (newest first)")
    runs.add_argument("root", nargs="?", default="runs", help="directory holding run directories (default runs)")
    return parser


def _unsir_config(args: argparse.Namespace) -> UnsirConfig:
    overrides = {name: getattr(args, name) for name, _, _ in knobs(UnsirConfig) if getattr(args, name) is not None}
    base = UnsirConfig.official() if args.preset == "official" else default_unsir(args.dataset, args.model)
    return replace(base, **overrides)


def _train_config(args: argparse.Namespace):
    recipe = default_recipe(args.dataset, args.model).with_epochs(args.epochs)
    return replace(recipe, pretrained=True) if args.pretrained else recipe


def _parse_sets(items: list[str]) -> tuple[tuple[str, str, object], ...]:
    """``--set METHOD.FIELD=VALUE`` -> (method, field, typed value)."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot:
            raise UnsirError(f"--set {item!r}: expected METHOD.FIELD=VALUE, e.g. neggrad.lr=0.005")
        fields = {f: d for f, d, _ in method_knobs(method)}
        if name not in fields:
            raise UnsirError(f"--set {item!r}: {method} has no field {name!r}; fields: {', '.join(fields)}")
        kind = type(fields[name]) if fields[name] is not None else float
        try:
            value = (raw.lower() in ("1", "true", "yes")) if kind is bool else kind(raw)
        except ValueError as err:
            raise UnsirError(f"--set {item!r}: {err}") from err
        out.append((method, name, value))
    return tuple(out)


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UnsirError(f"{flag} takes comma-separated integers, got {text!r}") from None


def cmd_experiment(args: argparse.Namespace) -> None:
    cfg = ExperimentConfig(
        dataset=args.dataset, model=args.model, forget=tuple(args.forget.split(",")), seed=args.seed,
        seeds=_int_list(args.seeds, "--seeds") if args.seeds else None, model_seed=args.model_seed,
        device=args.device, data_dir=args.data_dir,
        cache_dir=args.cache_dir, image_size=args.image_size, train=_train_config(args), unsir=_unsir_config(args),
        retrain=not args.no_retrain, methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        method_overrides=_parse_sets(args.set),
        metrics=() if args.metrics == "accuracy" else tuple(m for m in args.metrics.split(",") if m != "accuracy"),
    )  # fmt: skip
    progress = TqdmProgress(disable=args.quiet)
    metrics, models = run_experiment(cfg, progress=progress)
    progress.close()
    path = write_results(args.out, metrics, models)
    print(format_table(metrics))
    for name, message in metrics["errors"].items():
        print(f"warning: {name} failed: {message}", file=sys.stderr)
    print(f"wrote {path}")


def format_table(metrics: dict) -> str:
    """The headline numbers of a run as a text table (mean +- std over seeds)."""

    def cell(m: dict, key: str, fmt: str) -> str:
        value = m.get(key)
        if value is None:
            return "-"
        std = m.get("std", {}).get(key, 0.0)
        return format(value, fmt) + (f"+-{std:{fmt}}" if len(metrics["per_seed"]) > 1 else "")

    lines = [f"{'model':<12} {'forget_acc':>14} {'retain_acc':>14} {'seconds':>12} {'MIA':>6} {'relearn':>8}"]
    for name, m in metrics["models"].items():
        mia = m.get("mia", {}).get("member_rate")
        relearn = m.get("relearn", {}).get("steps")
        lines.append(
            f"{name:<12} {cell(m, 'forget_acc', '.4f'):>14} {cell(m, 'retain_acc', '.4f'):>14} "
            f"{cell(m, 'seconds', '.1f'):>12} {'-' if mia is None else f'{mia:.3f}':>6} "
            f"{'-' if relearn is None else f'{relearn:.0f}':>8}"
        )
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> None:
    data = load_dataset(args.dataset, args.data_dir, **dataset_options(args.dataset, args.image_size))
    classes = range(data.num_classes)
    if args.forget:
        classes = retained_classes(resolve_classes(args.forget, data.classes), data.num_classes)
    cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    progress = TqdmProgress(disable=args.quiet)
    _, meta = trained_model(
        data,
        args.model,
        _train_config(args),
        classes,
        resolve_device(args.device),
        seed=args.seed,
        cache_dir=cache_dir,
        progress=progress,
        phase="train",
    )
    progress.close()
    last = (meta.get("history") or [{}])[-1]
    print(
        json.dumps(
            {
                "checkpoint": meta["checkpoint"],
                "cached": meta["cached"],
                "seconds": meta.get("seconds"),
                "last_epoch": last,
            },
            indent=2,
        )
    )


def cmd_list(args: argparse.Namespace) -> None:
    print("data sets:", ", ".join(list_datasets()))
    print("models:   ", ", ".join(list_models()))
    print("methods:")
    for name in list_methods():
        m = get_method(name)
        print(f"  {name:<12} {'reads forget data' if m.reads_forget else 'zero-glance':<18} {m.summary}")
    print("recipes (data set, model):")
    for (dataset, model), recipe in RECIPES.items():
        print(f"  {dataset:>8} {model:<12} {recipe}")


def cmd_runs(args: argparse.Namespace) -> None:
    rows = list_runs(args.root)
    if not rows:
        print(f"no runs under {args.root}")
    for r in rows:
        unsir = r.headline.get("unsir", {})
        figures = f"unsir forget {unsir['forget_acc']:.3f} retain {unsir['retain_acc']:.3f}" if unsir else ""
        print(f"{r.finished_at:<25} {r.path.name:<30} {r.dataset}/{r.model} forget={r.forget_classes} "
              f"methods={','.join(r.methods)} seeds={r.seeds} {figures}")  # fmt: skip


COMMANDS = {"experiment": cmd_experiment, "train": cmd_train, "list": cmd_list, "runs": cmd_runs}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except UnsirError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        raise SystemExit(130) from None

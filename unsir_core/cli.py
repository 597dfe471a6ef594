"""Command line: ``python -m unsir_core {experiment,train,list} ...``.

Builds the typed configs from argparse and calls the core; user errors (UnsirError) print
one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from . import distributed
from .config import field_choices, knobs, parse_value
from .console import TqdmProgress, format_table
from .data import resolve_classes, retained_classes
from .datasets import list_datasets, load_dataset
from .errors import UnsirError
from .evaluation import list_metrics
from .experiment import ExperimentConfig, run_experiment, train_reference_models
from .methods import get_method, headline_method, list_methods, parse_method_overrides
from .model_cache import trained_model
from .models import list_models
from .paths import default_cache_dir
from .recipes import RECIPE_SETS, default_recipe
from .runs import REFERENCES, check_run_target, list_runs, write_run
from .runtime import check_seed, resolve_device


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
    p.add_argument(
        "--recipe",
        default="official",
        choices=list(RECIPE_SETS),
        help="training recipes of the original and retrained models: official (the UNSIR notebook's, "
        "the paper comparison) or fast (one-cycle SGD, augmentation, bf16 autocast; default official)",
    )
    p.add_argument("--pretrained", action="store_true", help="start training from torchvision ImageNet weights")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _arg_type(kind: type) -> Callable[[str], object]:
    """An argparse ``type`` that parses like ``--set`` does (``false`` is False for a bool)."""

    def convert(text: str) -> object:
        try:
            return parse_value(kind, text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = kind.__name__  # argparse names the type in its error message
    return convert


def _add_headline(p: argparse.ArgumentParser) -> None:
    """``--preset`` and a flag per config field of the headline method (UNSIR)."""
    method = headline_method()
    g = p.add_argument_group(f"{method.name.upper()} hyper-parameters (override the preset)")
    g.add_argument("--preset", choices=method.preset_names(), help=method.preset_help)
    for name, default, help_text in knobs(method.config):
        flag = "--" + method.flag_names.get(name, name).replace("_", "-")
        g.add_argument(
            flag,
            dest=name,
            type=_arg_type(type(default)),
            choices=field_choices(method.config, name),
            default=None,
            help=f"{help_text} (CIFAR default: {default})",
        )


def one_line(message: str) -> str:
    """``message`` with its control characters escaped: a name holding a newline (a file's,
    a user's) cannot print a second, forged line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one ``error:`` line (as every other error
    is), pointing to ``--help`` instead of printing the whole usage."""

    def error(self, message: str):
        print(f"error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m unsir_core", description="Class unlearning with UNSIR, zero-glance.")
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
        default=headline_method().name,
        help=f"comma-separated unlearning methods to compare (default {headline_method().name}); any of: "
        f"{', '.join(list_methods())}",
    )
    exp.add_argument("--seeds", help="comma-separated seeds (e.g. 0,1,2): every method per seed, mean and std reported")
    exp.add_argument(
        "--metrics",
        default=",".join(ExperimentConfig.metrics),
        help="metrics beyond accuracy, comma-separated; 'accuracy' for accuracy only, 'all' for every one "
        f"(default {','.join(ExperimentConfig.metrics)}; any of {', '.join(list_metrics())})",
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
    exp.add_argument(
        "--original",
        metavar="PATH",
        help="your own trained model as the original (safetensors or a .pt state_dict of --model with the data "
        "set's class count; never unpickled) instead of training one; UNSIR then calibrates itself (--preset)",
    )
    exp.add_argument(
        "--retrained",
        metavar="PATH",
        help="your own retrained gold standard (trained without the forget classes), checked as --original",
    )
    _add_headline(exp)

    tr = sub.add_parser(
        "train", help="train (or find in the cache) the original model, or the retrained one with --forget"
    )
    _add_common(tr)
    tr.add_argument("--forget", help="train the retrained model without these classes instead of the original")

    sub.add_parser("list", help="list data sets, models, methods and training recipes")

    runs = sub.add_parser("runs", help="list the stored runs under a directory (newest first)")
    runs.add_argument("root", nargs="?", default="runs", help="directory holding run directories (default runs)")
    return parser


def _headline_overrides(args: argparse.Namespace) -> tuple[tuple[str, str, object], ...]:
    """The headline method's flags given, as (method, field, value) changes on top of its preset."""
    method = headline_method()
    return tuple(
        (method.name, name, getattr(args, name))
        for name, _, _ in knobs(method.config)
        if getattr(args, name) is not None
    )


def _train_config(args: argparse.Namespace):
    recipe = default_recipe(args.dataset, args.model, args.recipe).with_epochs(args.epochs)
    return replace(recipe, pretrained=True) if args.pretrained else recipe


def _metric_list(text: str) -> tuple[str, ...]:
    """``--metrics``: names, or ``all``; ``accuracy`` (always measured) adds nothing."""
    names = [m.strip() for m in text.split(",") if m.strip() and m.strip() != "accuracy"]
    return tuple(list_metrics()) if names == ["all"] else tuple(names)


def int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UnsirError(f"{flag} takes comma-separated integers, got {text!r}") from None


def experiment_config(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment the parsed arguments describe (checked: see ExperimentConfig)."""
    return ExperimentConfig(  # checks every seed, name and hyper-parameter before any work
        dataset=args.dataset,
        model=args.model,
        forget=tuple(args.forget.split(",")),
        seed=args.seed,
        seeds=int_list(args.seeds, "--seeds") if args.seeds else None,
        model_seed=args.model_seed,
        device=args.device,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        image_size=args.image_size,
        recipes=args.recipe,
        train=_train_config(args),
        presets={headline_method().name: args.preset} if args.preset else {},
        retrain=not args.no_retrain,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        method_overrides=_headline_overrides(args) + parse_method_overrides(args.set),
        metrics=_metric_list(args.metrics),
        original_checkpoint=args.original,
        retrained_checkpoint=args.retrained,
    )


def cmd_experiment(args: argparse.Namespace) -> None:
    cfg = experiment_config(args)
    check_run_target(args.out)  # a folder that cannot take the run fails now, not after the experiment
    if distributed.launched():  # torchrun: every process trains the reference models, rank 0 goes on alone
        distributed.setup(resolve_device(args.device))
        main_process = distributed.is_main()
        train_reference_models(cfg, progress=TqdmProgress(disable=args.quiet or not main_process))
        distributed.close()
        if not main_process:
            return
    progress = TqdmProgress(disable=args.quiet)
    metrics, models = run_experiment(cfg, progress=progress)
    progress.close()
    path = write_run(args.out, metrics, models)
    print(format_table(metrics))
    for name, message in metrics["errors"].items():
        print(f"warning: {name} failed: {message}", file=sys.stderr)
    print(f"wrote {path}")


def cmd_train(args: argparse.Namespace) -> None:
    check_seed(args.seed)
    recipe = _train_config(args)
    data = load_dataset(args.dataset, args.data_dir, image_size=args.image_size)
    classes = range(data.num_classes)
    if args.forget:
        classes = retained_classes(resolve_classes(args.forget, data.classes), data.num_classes)
    cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    device = distributed.setup(resolve_device(args.device))  # torchrun: join the other processes
    progress = TqdmProgress(disable=args.quiet or not distributed.is_main())
    _, meta = trained_model(
        data,
        args.model,
        recipe,
        classes,
        device,
        seed=args.seed,
        cache_dir=cache_dir,
        progress=progress,
        phase="train",
    )
    progress.close()
    main_process = distributed.is_main()
    distributed.close()
    if not main_process:
        return
    last = (meta.get("history") or [{}])[-1]
    print(
        json.dumps(
            {
                "checkpoint": meta["checkpoint"],
                "cached": meta["cached"],
                "seconds": meta.get("seconds"),
                "world_size": meta.get("world_size", 1),
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
        kind = "gold standard" if m.gold_standard else "reads forget data" if m.reads_forget else "zero-glance"
        print(f"  {name:<20} {kind:<18} {m.summary}")
    print("metrics beyond accuracy:", ", ".join(list_metrics()))
    for name, table in RECIPE_SETS.items():
        print(f"{name} recipes (data set, model):")
        for (dataset, model), recipe in table.items():
            print(f"  {dataset:>8} {model:<12} {recipe}")


def cmd_runs(args: argparse.Namespace) -> None:
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always")
        rows = list_runs(args.root)
    for w in skipped:
        print(f"warning: {w.message}", file=sys.stderr)
    if not rows:
        print(f"no runs under {args.root}")

    def fig(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    for r in rows:
        figures = "; ".join(
            f"{name} forget {fig(h.get('forget_acc'))} retain {fig(h.get('retain_acc'))}"
            for name, h in r.headline.items()
            if name not in REFERENCES
        )
        print(
            f"{r.finished_at:<25} {r.path.name:<30} {r.dataset}/{r.model} forget={r.forget_classes} "
            f"methods={','.join(r.methods)} seeds={r.seeds} {figures}"
        )


COMMANDS = {"experiment": cmd_experiment, "train": cmd_train, "list": cmd_list, "runs": cmd_runs}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except UnsirError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        raise SystemExit(130) from None

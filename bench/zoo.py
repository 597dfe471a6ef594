"""Model zoo: UNSIR on models this project did not train.

Each original below is trained by a plain PyTorch loop written here (not ``unsir_core.train``),
with a recipe outside the project's recipe sets (optimiser, learning rate and schedule,
epochs, label smoothing, augmentation, weight decay vary), saved as a ``.pt`` state_dict, and
handed to ``python -m unsir_core experiment --original PATH`` as a user would, once per UNSIR
preset (``calibrated``, the default for such a model, and ``tuned`` / ``official`` for
contrast), for each of its forget classes (one at a time). Test forget / retained accuracy,
the calibration's trace and cost are recorded; retraining time is the original's measured
training time scaled to the retained share of the training set (same loop, same recipe).

``--signal-check`` also runs the calibration with every step size tried on each (original,
class) and measures each trial's TEST forget accuracy (which the calibration never sees), to
show how well its forgetting signal predicts it.

    python -m bench.zoo --only digits,fashionmnist --signal-check --out bench/results/zoo_small.json
    python -m bench.zoo --only cifar10 --out bench/results/zoo_cifar10.json
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.common import ROOT, base_parser, command, write_result
from unsir_core.calibration import calibrated_unsir, holdout_size
from unsir_core.cli import main as cli_main
from unsir_core.data import retained_classes
from unsir_core.datasets import load_dataset
from unsir_core.errors import UnsirError
from unsir_core.methods import method_config
from unsir_core.metrics import split_accuracy
from unsir_core.models import create_model
from unsir_core.provenance import environment
from unsir_core.runtime import resolve_device, set_seed
from unsir_core.train import accuracy, predict

PRESETS = ("calibrated", "tuned", "official")


@dataclass(frozen=True)
class Recipe:
    """A training recipe of the plain loop below (what a user's own script might do)."""

    optimizer: str  # sgd (momentum 0.9, nesterov), adam or adamw
    lr: float
    epochs: int
    schedule: str = "none"  # none, cosine or onecycle
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: str = "none"  # none, flip (horizontal), crop (4-pixel shift), crop_flip
    batch_size: int = 128


@dataclass(frozen=True)
class Entry:
    name: str
    dataset: str
    model: str
    recipe: Recipe
    forget: tuple[int, ...]  # classes forgotten, one run each
    seeds: tuple[int, ...] = (0,)  # model seeds (several: does the preset hold beyond one model?)


ZOO = [
    Entry("digits-resnet18-sgd-ls", "digits", "resnet18",
          Recipe("sgd", 0.05, 8, "cosine", 5e-4, 0.1, "crop", 64), (3, 8), seeds=(0, 1, 2)),
    Entry("digits-allcnn-adam", "digits", "allcnn", Recipe("adam", 1e-3, 15, batch_size=64), (1, 7)),
    Entry("fashion-resnet18-adamw-cosine", "fashionmnist", "resnet18",
          Recipe("adamw", 2e-3, 3, "cosine", 0.05, 0.0, "flip"), (0, 6)),
    Entry("fashion-mobilenetv2-sgd-onecycle-ls", "fashionmnist", "mobilenetv2",
          Recipe("sgd", 0.1, 4, "onecycle", 4e-5, 0.1, "crop_flip", 256), (2, 9)),
    Entry("fashion-vit-adamw", "fashionmnist", "vit",
          Recipe("adamw", 1e-3, 6, "cosine", 0.05, 0.0, "flip", 256), (4, 7)),
    Entry("fashion-allcnn-sgd-plain", "fashionmnist", "allcnn", Recipe("sgd", 0.02, 4, weight_decay=5e-4), (1, 8)),
    Entry("cifar10-resnet18-sgd-onecycle-ls", "cifar10", "resnet18",
          Recipe("sgd", 0.1, 6, "onecycle", 5e-4, 0.1, "crop_flip", 256), (3, 8)),
    Entry("cifar10-resnet18-adam-noaug", "cifar10", "resnet18", Recipe("adam", 1e-3, 4, batch_size=128), (1, 5)),
    Entry("cifar10-allcnn-sgd-cosine", "cifar10", "allcnn",
          Recipe("sgd", 0.05, 8, "cosine", 5e-4, 0.0, "crop_flip", 128), (2, 9)),
    Entry("cifar10-mobilenetv2-adamw-ls", "cifar10", "mobilenetv2",
          Recipe("adamw", 2e-3, 8, "cosine", 0.01, 0.1, "crop_flip", 256), (0, 4)),
]  # fmt: skip


def _augment(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    if "crop" in kind:  # shift by up to 4 pixels (one shift per batch: a short script's way)
        dy, dx = (int(v) for v in torch.randint(-4, 5, (2,), generator=gen))
        x = torch.roll(F.pad(x, (4, 4, 4, 4)), (dy, dx), (2, 3))[:, :, 4:-4, 4:-4]
    if "flip" in kind:
        flip = torch.rand(len(x), generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
    return x


def train_outside(entry: Entry, seed: int, data, device: torch.device) -> tuple[torch.nn.Module, float]:
    """A user's training script: plain PyTorch, the entry's recipe. Returns (model, seconds)."""
    r = entry.recipe
    set_seed(seed)
    model = create_model(entry.model, data.num_classes, image_size=data.image_shape[-1]).to(device)
    params = model.parameters()
    opt = {
        "sgd": lambda: torch.optim.SGD(params, r.lr, momentum=0.9, nesterov=True, weight_decay=r.weight_decay),
        "adam": lambda: torch.optim.Adam(params, r.lr, weight_decay=r.weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, r.lr, weight_decay=r.weight_decay),
    }[r.optimizer]()
    steps = r.epochs * -(-len(data.train) // r.batch_size)
    sched = {
        "none": lambda: None,
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps),
        "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(opt, r.lr, total_steps=steps),
    }[r.schedule]()
    gen = torch.Generator().manual_seed(seed)
    images, labels = data.train.images, data.train.labels
    start = time.perf_counter()
    model.train()
    for _ in range(r.epochs):
        order = torch.randperm(len(labels), generator=gen)
        for i in range(0, len(order), r.batch_size):
            idx = order[i : i + r.batch_size]
            if len(idx) < 2:
                continue
            x = _augment(data.normalize(images[idx].to(device)), r.augment, gen)
            loss = F.cross_entropy(model(x), labels[idx].to(device), label_smoothing=r.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model.eval(), time.perf_counter() - start


def run_cli(args: list[str]) -> dict | str:
    """``python -m unsir_core experiment ...`` in this process: the run's metrics.json, or the
    one-line error the command printed (e.g. a calibration that found no setting)."""
    stderr = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(None):
        try:
            cli_main(["experiment", *args, "--out", f"{tmp}/run", "--quiet"])
        except SystemExit as exit:
            if exit.code:
                return stderr.getvalue().strip().removeprefix("error: ")
        return json.loads(Path(tmp, "run", "metrics.json").read_text())


def signal_check(original, entry: Entry, data, c: int, device: torch.device) -> list[dict]:
    """Every step size the calibration would try, each trial's scores beside its TEST forget
    and retained accuracy (measured here, outside the unlearning)."""
    cfg = method_config("unsir", entry.dataset, entry.model, preset="calibrated")
    retain = retained_classes([c], data.num_classes)
    holdout, rest = data.train.split_per_class(retain, holdout_size(cfg), seed=0)
    dr_sub = rest.sample_per_class(retain, cfg.dr_sub_per_class, seed=0)
    test_images, test_labels = data.test.images, data.test.labels  # plain tensors: the guard is for ImageTensors
    rows = []

    def on_trial(record: dict, model: torch.nn.Module) -> None:
        forget_acc, retain_acc = split_accuracy(predict(model, test_images, data.normalize, device), test_labels, [c])
        rows.append({**record, "test_forget_acc": forget_acc, "test_retain_acc": retain_acc})

    try:
        calibrated_unsir(
            original, [c], dr_sub, holdout, data.normalize, cfg, device,
            seed=0, model_name=entry.model, exhaustive=True, on_trial=on_trial,
        )  # fmt: skip
    except UnsirError:
        pass  # the rows are what is measured here
    return rows


def original(entry: Entry, seed: int, data, device: torch.device, path: Path, reuse: bool):
    """The entry's original of ``seed``, its training seconds and whether it was reused: trained here
    and saved at ``path`` as a user would hand it over (a ``.pt`` state_dict, beside it a ``.json``
    with the recipe and the time), or, with ``reuse``, read back from there when an earlier run
    trained it with the same recipe."""
    record = path.with_suffix(".json")
    recipe = asdict(entry.recipe)
    if reuse and path.exists() and record.exists():
        meta = json.loads(record.read_text())
        if meta.get("recipe") == recipe and meta.get("model") == entry.model:
            model = create_model(entry.model, data.num_classes, image_size=data.image_shape[-1])
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.to(device), float(meta["train_seconds"]), True
    model, seconds = train_outside(entry, seed, data, device)
    torch.save(model.state_dict(), path)  # what a user hands over
    record.write_text(json.dumps({"model": entry.model, "recipe": recipe, "seed": seed, "train_seconds": seconds}))
    return model, seconds, False


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--only", help="comma-separated data sets or entry names to run (default: all)")
    p.add_argument("--presets", default=",".join(PRESETS), help=f"UNSIR presets (default {','.join(PRESETS)})")
    p.add_argument("--signal-check", action="store_true", help="also measure the signal against test forget accuracy")
    p.add_argument("--checkpoints", default=str(ROOT / "bench" / "cache" / "zoo"), help="where the originals go")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="take an original trained by an earlier run with the same recipe from --checkpoints (with the training "
        "time measured then, for the retraining figure) instead of training it again",
    )
    p.add_argument("--out", required=True)
    args = p.parse_args()
    only = set(args.only.split(",")) if args.only else None
    device = resolve_device(args.device)
    folder = Path(args.checkpoints)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for entry in ZOO:
        if only and entry.name not in only and entry.dataset not in only:
            continue
        data = load_dataset(entry.dataset, args.data_dir)
        for seed in entry.seeds:
            path = folder / f"{entry.name}-seed{seed}.pt"
            model, train_seconds, reused = original(entry, seed, data, device, path, reuse=args.reuse)
            logits = predict(model, data.test.images, data.normalize, device)
            test_acc = accuracy(logits, data.test.labels)
            print(f"{entry.name} seed {seed}: trained in {train_seconds:.1f} s, test accuracy {test_acc:.4f}")
            for c in entry.forget:
                row = {
                    "entry": entry.name,
                    "dataset": entry.dataset,
                    "model": entry.model,
                    "recipe": asdict(entry.recipe),
                    "model_seed": seed,
                    "forget": c,
                    "train_seconds": train_seconds,
                    "original_reused": reused,  # trained (and timed) by an earlier run
                    "retrain_seconds": train_seconds * (1 - float((data.train.labels == c).float().mean())),
                    "presets": {},
                }
                for preset in args.presets.split(","):
                    common = ["--dataset", entry.dataset, "--model", entry.model, "--forget", str(c)]
                    cli = [*common, "--original", str(path), "--preset", preset, "--no-retrain", "--metrics",
                           "accuracy", "--device", str(device.type)]  # fmt: skip
                    if args.data_dir:
                        cli += ["--data-dir", args.data_dir]
                    metrics = run_cli(cli)
                    row["presets"][preset] = _summary(metrics)
                    s = row["presets"][preset]
                    print(
                        f"  class {c} {preset:<10} forget {_fmt(s['forget_acc'])} retain {_fmt(s['retain_acc'])} "
                        f"(original {_fmt(s['original_forget_acc'])} / {_fmt(s['original_retain_acc'])}) "
                        f"{s['seconds'] or 0:.1f} s{'  ' + s['error'][:300] if s['error'] else ''}",
                        flush=True,
                    )
                if args.signal_check:
                    row["signal_check"] = signal_check(model, entry, data, c, device)
                results.append(row)
                _write(args.out, device, results)  # after every run: a long zoo keeps what it measured
    print(json.dumps(summarise(results), indent=2))


def _write(path: str, device: torch.device, rows: list[dict]) -> None:
    write_result(
        path,
        {
            "command": command(),
            "device": str(device),
            "environment": environment(),
            "zoo": [{**asdict(e), "recipe": asdict(e.recipe)} for e in ZOO],
            "rows": rows,
            "summary": summarise(rows),
        },
    )


def _fmt(value) -> str:
    return "  -   " if value is None else f"{value:.4f}"


def _summary(metrics: dict | str) -> dict:
    """What the zoo keeps of one run: accuracies, time, phases, the calibration trace, error."""
    if isinstance(metrics, str):  # the command failed: nothing but its message
        keys = ("original_forget_acc", "original_retain_acc", "forget_acc", "retain_acc", "seconds", "phases")
        return dict.fromkeys(keys) | {"trace": [], "config": None, "checkpoint_sha256": None, "error": metrics}
    original, unsir = metrics["models"]["original"], metrics["models"].get("unsir", {})
    return {
        "original_forget_acc": original["forget_acc"],
        "original_retain_acc": original["retain_acc"],
        "forget_acc": unsir.get("forget_acc"),
        "retain_acc": unsir.get("retain_acc"),
        "seconds": unsir.get("seconds"),
        "phases": unsir.get("phases"),
        "trace": [h for h in unsir.get("history", []) if str(h.get("phase", "")).startswith("calibration")],
        "config": metrics["config"]["method_configs"].get("unsir"),
        "checkpoint_sha256": original.get("checkpoint_sha256"),
        "error": metrics["errors"].get("unsir"),
    }


def summarise(rows: list[dict]) -> dict:
    """Per preset: runs, how many forget to <= 1 %, retained change (mean, worst), time; and
    how well the calibration's signal (== 0 or not) tells test forget accuracy <= 1 %."""
    out = {}
    for preset in {p for r in rows for p in r["presets"]}:
        runs = [r["presets"][preset] for r in rows if preset in r["presets"]]
        done = [s for s in runs if s["forget_acc"] is not None]
        drops = [s["retain_acc"] - s["original_retain_acc"] for s in done]
        out[preset] = {
            "runs": len(runs),
            "failed": len(runs) - len(done),
            "forget_le_1pct": sum(s["forget_acc"] <= 0.01 for s in done),
            "retain_change_mean": statistics.mean(drops) if drops else None,
            "retain_change_worst": min(drops) if drops else None,
            "seconds_median": statistics.median(s["seconds"] for s in done) if done else None,
        }
    trials = [t for r in rows for t in r.get("signal_check", [])]
    if trials:
        flagged = [t for t in trials if t["forgets"]]
        out["signal"] = {
            "trials": len(trials),
            "said_forgotten": len(flagged),
            "said_forgotten_but_test_forget_gt_1pct": sum(t["test_forget_acc"] > 0.01 for t in flagged),
            "said_not_forgotten_but_test_forget_le_1pct": sum(
                t["test_forget_acc"] <= 0.01 for t in trials if not t["forgets"]
            ),
            "worst_test_forget_when_said_forgotten": max((t["test_forget_acc"] for t in flagged), default=None),
        }
    return out


if __name__ == "__main__":
    main()

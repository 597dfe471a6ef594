"""Training time in one process against several (torchrun, DistributedDataParallel); print a
table, write JSON.

    python -m bench.distributed --dataset fashionmnist --model resnet18 --epochs 1 --processes 1,2 \\
        --out bench/results/distributed_fashionmnist_resnet18.json

Each process count trains the data set's recipe (``--recipe``) for ``--epochs`` epochs from the
command line (``python -m unsir_core train``; ``torch.distributed.run --standalone`` for more
than one process, so gloo on a CPU, nccl on GPUs), into its own empty cache, ``--repeats``
times, alternating. The table gives the training time the checkpoint records (``fit``'s own
clock), the wall time of the whole command (start-up included), the speed-up of the median
training time over one process, the last epoch's loss and accuracy, and the checkpoint's name:
the same recipe must give the same cache key whatever the number of processes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, base_parser, command, write_result
from unsir_core.checkpoints import read_metadata
from unsir_core.cli import int_list
from unsir_core.provenance import environment
from unsir_core.recipes import RECIPE_SETS


def train_command(processes: int, args, cache: Path) -> list[str]:
    launcher = [sys.executable, "-m", "unsir_core"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        launcher += ["-m", "unsir_core"]
    train = ["train", "--dataset", args.dataset, "--model", args.model, "--epochs", str(args.epochs)]
    train += ["--recipe", args.recipe, "--device", args.device, "--cache-dir", str(cache), "--quiet"]
    return launcher + train + (["--data-dir", args.data_dir] if args.data_dir else [])


def run_once(processes: int, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="unsir-ddp-") as tmp:
        cache = Path(tmp)
        start = time.perf_counter()
        subprocess.run(train_command(processes, args, cache), cwd=ROOT, check=True)
        wall = time.perf_counter() - start
        (checkpoint,) = cache.glob("*.safetensors")  # exactly one, written by rank 0
        meta = read_metadata(checkpoint)
    last = meta["history"][-1]
    return {
        "processes": processes,
        "train_seconds": float(meta["seconds"]),
        "wall_seconds": wall,
        "world_size": int(meta.get("world_size", 1)),
        "last_epoch": last,
        "checkpoint": checkpoint.name,
    }


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--epochs", type=int, default=1, help="training epochs per run (default 1)")
    p.add_argument("--processes", default="1,2", help="process counts to compare (comma-separated; default 1,2)")
    p.add_argument("--repeats", type=int, default=1, help="runs per process count, alternating (default 1)")
    p.add_argument("--recipe", default="official", choices=list(RECIPE_SETS), help="recipe set (default official)")
    p.add_argument("--out", help="JSON file for the results")
    args = p.parse_args()
    counts = int_list(args.processes, "--processes")
    if not counts or min(counts) < 1:
        raise SystemExit(f"--processes takes counts of at least 1, got {args.processes!r}")

    rows = [run_once(n, args) for _ in range(args.repeats) for n in counts]
    median = {
        n: {k: statistics.median(r[k] for r in rows if r["processes"] == n) for k in ("train_seconds", "wall_seconds")}
        for n in counts
    }
    base = median[counts[0]]["train_seconds"]
    print(f"{'processes':>9} {'train s':>9} {'wall s':>9} {'speed-up':>9}  last epoch loss / acc   checkpoint")
    for n in counts:
        last = [r for r in rows if r["processes"] == n][-1]
        m = median[n]
        print(
            f"{n:>9} {m['train_seconds']:9.1f} {m['wall_seconds']:9.1f} {base / m['train_seconds']:8.2f}x  "
            f"{last['last_epoch']['loss']:.4f} / {last['last_epoch']['accuracy']:.4f}   {last['checkpoint']}"
        )
    if args.out:
        write_result(
            args.out,
            {
                "benchmark": "distributed",
                "command": command(),
                "dataset": args.dataset,
                "model": args.model,
                "epochs": args.epochs,
                "recipes": args.recipe,
                "rows": rows,
                "median": {str(n): m for n, m in median.items()},
                "speedup_vs_first": {str(n): base / median[n]["train_seconds"] for n in counts},
                "same_checkpoint_name": len({r["checkpoint"] for r in rows}) == 1,
                "environment": environment(),
            },
        )


if __name__ == "__main__":
    main()

"""Training under torchrun: two real processes (gloo, CPU) train one model on digits."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unsir_core import distributed

ROOT = Path(__file__).resolve().parents[1]


def test_shards_are_equal_and_together_hold_every_sample(monkeypatch):
    n, world = 11, 3
    shards = []
    for rank in range(world):
        monkeypatch.setattr(distributed, "world_size", lambda: world)
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        shards.append(distributed.shard(n, torch.Generator().manual_seed(5)))  # every process: the same seed
    assert [len(s) for s in shards] == [4, 4, 4]
    assert sorted(set(torch.cat(shards).tolist())) == list(range(n))  # 12 slots: one sample twice (padding)
    monkeypatch.setattr(distributed, "world_size", lambda: 1)
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    one = distributed.shard(n, torch.Generator().manual_seed(5))
    assert torch.equal(one, torch.randperm(n, generator=torch.Generator().manual_seed(5)))  # one process: all


def test_outside_torchrun_nothing_is_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched() and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu")
    assert distributed.all_sum([1.0, 2.0], torch.device("cpu")) == [1.0, 2.0]


@pytest.mark.slow
def test_torchrun_trains_one_model_on_two_processes(tmp_path):
    from unsir_core.checkpoints import read_metadata
    from unsir_core.datasets import load_dataset
    from unsir_core.model_cache import checkpoint_model, model_cache_path
    from unsir_core.recipes import default_recipe

    cache = tmp_path / "cache"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "unsir_core", "train", "--dataset", "digits", "--model", "resnet18", "--epochs", "1"),
        *("--cache-dir", str(cache), "--quiet"),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = json.loads(out.stdout[out.stdout.index("{") :])  # rank 0 alone prints
    assert out.stdout.count('"checkpoint"') == 1 and printed["world_size"] == 2 and not printed["cached"]
    assert sorted(p.name for p in cache.iterdir()) == [Path(printed["checkpoint"]).name]  # written once, no leftovers

    data = load_dataset("digits")
    recipe = default_recipe("digits", "resnet18").with_epochs(1)
    single, _ = model_cache_path(data, "resnet18", recipe, range(10), seed=0, cache_dir=cache)
    assert single.name == Path(printed["checkpoint"]).name  # the key a one-process run would use
    meta = read_metadata(single)
    assert meta["world_size"] == 2
    shards = meta["shards"]  # what the two processes trained on in the epoch, gathered from both
    n = len(data.train)
    assert shards["samples_per_process"] == [-(-n // 2)] * 2 and shards["covers_training_set"]
    assert shards["seen_twice"] == n % 2  # an odd count: one sample padded in
    model, _ = checkpoint_model(single, "resnet18", data, torch.device("cpu"))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_torchrun_experiment_trains_both_reference_models_on_two_processes(tmp_path):
    from unsir_core.checkpoints import read_metadata

    cache, out = tmp_path / "cache", tmp_path / "run"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "unsir_core", "experiment", "--dataset", "digits", "--model", "resnet18", "--forget", "4"),
        *("--epochs", "1", "--noise-steps", "2", "--repair-epochs", "1", "--metrics", "accuracy"),
        *("--cache-dir", str(cache), "--out", str(out), "--quiet"),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote ") == 1  # rank 0 alone unlearns, measures and writes the run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["models"]["unsir"]["forget_acc"] < metrics["models"]["original"]["forget_acc"]
    checkpoints = sorted(cache.iterdir())
    assert [p.name.split("-")[2] for p in checkpoints] == ["original", "retrained"]
    assert all(read_metadata(p)["world_size"] == 2 for p in checkpoints)  # both trained by the two processes

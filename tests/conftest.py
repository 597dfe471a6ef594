"""Shared fixtures: tiny data and models on the CPU, caches in a temporary directory."""

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    """Never touch the user's cache: checkpoints and data go to a per-session temp dir."""
    root = tmp_path_factory.mktemp("unsir-cache")
    old = {k: os.environ.get(k) for k in ("UNSIR_CACHE_DIR", "UNSIR_DATA_DIR")}
    os.environ["UNSIR_CACHE_DIR"] = str(root / "checkpoints")
    os.environ["UNSIR_DATA_DIR"] = str(root / "data")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def digits():
    from unsir_core import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_digits_model(digits):
    """A ResNet18 trained for 3 epochs on digits (about 95 % test accuracy), shared read-only."""
    from unsir_core import TrainConfig, create_model, fit, set_seed

    set_seed(0)
    model = create_model("resnet18", digits.num_classes)
    fit(
        model,
        digits.train,
        digits.normalize,
        TrainConfig(epochs=3, batch_size=64, lr=1e-3, grad_clip_value=None, scheduler="none"),
        torch.device("cpu"),
    )
    return model


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


QUICK_ALL = ["--epochs", "1", "--noise-steps", "3", "--noise-batch", "16", "--dr-sub-per-class", "20", "--quiet"]


def make_run_with_every_metric(runs_dir: Path) -> Path:
    """A run (digits, class 4, UNSIR and its no-noise ablation, short training) with --metrics all."""
    from unsir_core.cli import main

    out = runs_dir / "all-metrics"
    main(
        [
            "experiment",
            "--dataset",
            "digits",
            "--model",
            "resnet18",
            "--forget",
            "4",
            "--methods",
            "unsir,unsir_no_noise,finetune",
            "--metrics",
            "all",
            "--out",
            str(out),
            *QUICK_ALL,
        ]
    )
    return out

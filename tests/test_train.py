import pytest
import torch
import torch.nn as nn

from unsir_core.errors import NonFiniteLossError
from unsir_core.recipes import TrainConfig, default_recipe
from unsir_core.runtime import resolve_device
from unsir_core.train import augment_batch, fit, predict, train_one_epoch


def test_official_recipe_is_the_default_for_cifar_resnet18():
    r = default_recipe("cifar10", "resnet18")
    assert (r.epochs, r.batch_size, r.optimizer, r.lr, r.weight_decay, r.grad_clip_value, r.scheduler) == (
        40,
        256,
        "adam",
        0.01,
        1e-4,
        0.1,
        "plateau",
    )
    assert default_recipe("cifar10", "vit").optimizer == "adamw"
    assert default_recipe("digits", "resnet18").epochs < 40


def test_fit_learns_the_digits(digits, trained_digits_model):
    logits = predict(trained_digits_model, digits.test.images, digits.normalize, torch.device("cpu"))
    assert (logits.argmax(1) == digits.test.labels).float().mean() > 0.85


def test_fit_reports_history_and_time(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    small = digits.train.subset(torch.arange(256))
    result = fit(
        model,
        small,
        digits.normalize,
        TrainConfig(epochs=3, batch_size=64, lr=1e-3),
        torch.device("cpu"),
        held_out=digits.test,
    )
    assert len(result.history) == 3 and result.seconds > 0
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert "held_out_loss" in result.history[0]


def test_nan_loss_stops_training_with_a_clear_error():
    model = nn.Linear(4, 2)
    loader = [(torch.full((2, 4), float("nan")), torch.tensor([0, 1]))]
    with pytest.raises(NonFiniteLossError, match="impair: the loss became nan"):
        train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"), phase="impair")


def test_augment_keeps_shape_and_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert set(out.unique().tolist()) <= set(x.unique().tolist()) | {0.0}  # pixels moved, none invented
    assert (out != 0).float().mean() >= 0.25  # at most 4 of 8 rows and columns come from the padding


def test_auto_device_falls_back_to_cpu_here():
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    assert resolve_device("cpu").type == "cpu"

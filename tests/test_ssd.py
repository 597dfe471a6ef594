"""Selective Synaptic Dampening: the importance and the dampening rule on known cases, and the
method through the registry on digits."""

import torch
import torch.nn.functional as F
from torch import nn

from unsir_core.data import ImageTensors
from unsir_core.methods import get_method, method_config, unlearn
from unsir_core.ssd import SsdConfig, dampen, importance

CPU = torch.device("cpu")


def test_importance_is_the_mean_squared_batch_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images = torch.randint(0, 256, (5, 3, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1])
    normalize = lambda x: x.float() / 255  # noqa: E731
    got = importance(model, ImageTensors(images, labels), normalize, CPU, batch_size=3)
    # by hand: batches [0:3] and [3:5], the squared gradient of each batch's mean loss, averaged
    expected = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for part in (slice(0, 3), slice(3, 5)):
        grads = torch.autograd.grad(
            F.cross_entropy(model(normalize(images[part])), labels[part]), list(model.parameters())
        )
        for (name, _), g in zip(model.named_parameters(), grads, strict=True):
            expected[name] += g.square() / 2
    for name in expected:
        torch.testing.assert_close(got[name], expected[name])
    assert all(p.grad is None for p in model.parameters())  # it leaves no gradients behind


def test_dampening_touches_only_the_weights_the_forget_data_needs_far_more():
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    full = {"weight": torch.tensor([[1.0, 1.0, 1.0, 0.0]])}
    forget = {"weight": torch.tensor([[5.0, 20.0, 10.0, 0.0]])}  # 5x, 20x, 10x (not > 10x), 0 vs 0
    fraction = dampen(model, forget, full, alpha=10.0, dampening=1.0)
    # only the second is selected, multiplied by min(1 * 1 / 20, 1)
    torch.testing.assert_close(model.weight, torch.tensor([[1.0, 0.1, 3.0, 4.0]]))
    assert fraction == 0.25
    dampen(model, {"weight": torch.tensor([[100.0, 0.0, 0.0, 0.0]])}, full, alpha=10.0, dampening=200.0)
    assert model.weight[0, 0] == 1.0  # the factor is bounded by 1: a weight never grows


def test_ssd_reads_forget_data_has_the_official_defaults_and_dampens_through_the_registry(digits, trained_digits_model):
    method = get_method("ssd")
    assert method.reads_forget
    assert method_config("ssd", "digits", "resnet18") == SsdConfig(alpha=10.0, dampening=1.0, batch_size=64)
    assert method_config("ssd", "cifar10", "resnet18") == SsdConfig(alpha=9.0, dampening=1.0, batch_size=64)
    assert method_config("ssd", "cifar10", "mobilenetv2").alpha == 9.0
    assert method_config("ssd", "cifar10", "vit").alpha == method_config("ssd", "digits", "vit").alpha == 5.0
    result = unlearn("ssd", trained_digits_model, "resnet18", digits, (3,), CPU, method_config("ssd", "digits", "x"))
    assert set(result.phases) == {"importance", "dampen"}
    pairs = list(zip(result.model.named_parameters(), trained_digits_model.parameters(), strict=True))
    assert any(not torch.equal(after, before) for (_, after), before in pairs)  # some weights were dampened ...
    for (name, after), before in pairs:
        assert torch.all(after.abs() <= before.abs()), name  # ... and none grew
    changed = sum(int((after != before).sum()) for (_, after), before in pairs)
    total = sum(p.numel() for p in trained_digits_model.parameters())
    (reported,) = result.history
    assert changed / total <= reported["dampened_fraction"] < 1  # selected: changed, or 0 already

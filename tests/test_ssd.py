"""Selective Synaptic Dampening: the importance and the dampening rule on known cases, and the
method through the registry on digits."""

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from unsir_core.data import ImageTensors
from unsir_core.methods import get_method, method_config, unlearn
from unsir_core.ssd import SsdConfig, dampen, importance
from unsir_core.train import accuracy, predict

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


def test_ssd_reads_forget_data_and_has_the_official_values_where_the_paper_measured_them():
    assert get_method("ssd").reads_forget
    # tuned: the official code's values on CIFAR-100 (the paper's setting), the search elsewhere
    assert method_config("ssd", "cifar100", "resnet18") == SsdConfig(alpha=10.0, dampening=1.0, batch_size=64)
    assert method_config("ssd", "cifar100", "vit").alpha == 5.0
    for dataset, model in (("cifar10", "resnet18"), ("cifar10", "mobilenetv2"), ("cifar10", "vit"), ("digits", "x")):
        assert method_config("ssd", dataset, model).alpha == 0.0  # searched
    # official: the code's values anywhere, for the ablation
    assert method_config("ssd", "cifar10", "resnet18", preset="official").alpha == 10.0
    assert method_config("ssd", "cifar10", "vit", preset="official").alpha == 5.0


def _changes(result, original):
    pairs = list(zip(result.model.named_parameters(), original.parameters(), strict=True))
    for (name, after), before in pairs:
        assert torch.all(after.abs() <= before.abs()), name  # no weight grew
    changed = sum(int((after != before).sum()) for (_, after), before in pairs)
    return changed / sum(p.numel() for p in original.parameters())


def test_ssd_at_a_fixed_alpha_dampens_through_the_registry(digits, trained_digits_model):
    cfg = method_config("ssd", "digits", "x", {"alpha": 9.0})
    result = unlearn("ssd", trained_digits_model, "resnet18", digits, (3,), CPU, cfg)
    assert set(result.phases) == {"importance", "dampen"}  # no search
    (reported,) = result.history
    assert reported["alpha"] == 9.0
    assert 0 < _changes(result, trained_digits_model) <= reported["dampened_fraction"] < 1  # selected: changed or 0


def test_the_alpha_search_finds_the_largest_alpha_that_forgets_the_judged_samples(
    digits, trained_digits_model, monkeypatch
):
    import unsir_core.ssd as ssd_module

    # a dampening that forgets class 3 exactly when alpha <= 3.7 (the head's bias of class 3 sunk),
    # so the search's answer is known; it acts on the model given, so a missed restore would show
    threshold = 3.7

    def dampen(model, forget, full, alpha, dampening):
        if alpha <= threshold:
            with torch.no_grad():
                list(model.parameters())[-1][3] -= 1e4
        return 0.5 if alpha <= threshold else 0.0

    monkeypatch.setattr(ssd_module, "dampen", dampen)
    cfg = method_config("ssd", "digits", "x", {"judge": 100})
    reports = []
    result = unlearn(
        "ssd", trained_digits_model, "resnet18", digits, (3,), CPU, cfg, seed=1, progress=lambda *r: reports.append(r)
    )
    assert reports[-1] == ("ssd", reports[-1][2], reports[-1][2])  # the progress counts the search's steps too
    assert set(result.phases) == {"importance", "alpha_search", "dampen"}
    *tried, chosen, used = result.history
    assert chosen["reached"] and chosen["judged_on"] == 100 and len(tried) == 2 + cfg.search_steps
    alpha = used["alpha"]
    assert alpha == chosen["chosen_alpha"] and threshold / 1.005 < alpha <= threshold
    largest_ratio, floor = tried[0]["alpha"], tried[1]["alpha"]  # tried first, in this order
    assert largest_ratio > threshold and floor == ssd_module.SEARCH_FLOOR
    for t in tried:  # each alpha tried on the unchanged model: it forgot exactly when at or below the threshold
        assert (t["forget_accuracy"] <= cfg.forget_target) == (t["alpha"] <= threshold), t
    forget = digits.train.select((3,))
    assert accuracy(predict(result.model, forget.images, digits.normalize, CPU), forget.labels) == 0.0
    assert accuracy(predict(trained_digits_model, forget.images, digits.normalize, CPU), forget.labels) > 0.9


def test_the_alpha_search_says_when_even_its_floor_does_not_forget(digits, trained_digits_model, monkeypatch):
    import unsir_core.ssd as ssd_module

    monkeypatch.setattr(ssd_module, "dampen", lambda *args: 0.0)  # a dampening that changes nothing
    cfg = method_config("ssd", "digits", "x", {"judge": 50})
    result = unlearn("ssd", trained_digits_model, "resnet18", digits, (3,), CPU, cfg)
    *tried, chosen, used = result.history
    assert [t["alpha"] for t in tried][1] == ssd_module.SEARCH_FLOOR and len(tried) == 2  # the largest, the floor
    assert chosen["reached"] is False and used["alpha"] == ssd_module.SEARCH_FLOOR


def test_the_alpha_search_fails_plainly_when_the_alpha_that_forgets_wrecks_the_model(
    digits, trained_digits_model, monkeypatch
):
    import pytest

    import unsir_core.ssd as ssd_module

    # a dampening that forgets class 3 only by sending every image to class 0 (below alpha 3.7)
    def dampen(model, forget, full, alpha, dampening):
        if alpha <= 3.7:
            with torch.no_grad():
                list(model.parameters())[-1][0] += 1e4
        return 0.5 if alpha <= 3.7 else 0.0

    monkeypatch.setattr(ssd_module, "dampen", dampen)
    cfg = method_config("ssd", "digits", "x", {"judge": 100})
    with pytest.raises(
        ssd_module.SsdSearchError, match=r"no alpha forgets without wrecking the model: .* \(alpha 3\.6"
    ):
        unlearn("ssd", trained_digits_model, "resnet18", digits, (3,), CPU, cfg, seed=1)
    # within the tolerance it is used, and the history says what it cost on the judged retained samples
    result = unlearn("ssd", trained_digits_model, "resnet18", digits, (3,), CPU, replace(cfg, retain_tolerance=1.0))
    *_, chosen, _ = result.history
    assert chosen["retain_accuracy"] < 0.2 < 0.9 < chosen["original_retain_accuracy"]

"""UNSIR's steps, its zero-glance property and its failure handling, on digits."""

import copy
import importlib
from dataclasses import replace

import pytest
import torch

from unsir_core import load_dataset
from unsir_core.data import retained_classes
from unsir_core.errors import InvalidConfigError, NonFiniteLossError, ZeroGlanceViolation
from unsir_core.metrics import accuracy_report
from unsir_core.models import model_spec
from unsir_core.unsir import UnsirConfig, distilled_targets, impair, learn_noise, unsir

from .conftest import state_equal

CPU = torch.device("cpu")
unsir_module = importlib.import_module("unsir_core.unsir")  # the package re-exports the function under this name
FAST = UnsirConfig(dr_sub_per_class=60, noise_batch=32, noise_steps=10, batch_size=64)


def dr_sub_for(digits, forget, per_class=60):
    return digits.train.sample_per_class(retained_classes(forget, 10), per_class, seed=0)


def test_noise_is_labelled_with_its_own_class_and_leaves_the_model_alone(trained_digits_model):
    model = copy.deepcopy(trained_digits_model)
    before = copy.deepcopy(model.state_dict())  # BatchNorm running statistics included
    noise, labels = learn_noise(model, [2, 7], (3, 32, 32), FAST, CPU, generator=torch.Generator().manual_seed(0))
    assert noise.shape == (64, 3, 32, 32)
    assert labels.tolist() == [2] * 32 + [7] * 32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())  # gradients switched back on
    # the noise maximises the loss of its class: the model rejects it far more than random input
    with torch.no_grad():
        model.eval()
        ce = torch.nn.functional.cross_entropy
        rand = torch.randn_like(noise)
        assert ce(model(noise), labels) > ce(model(rand), labels)


def test_unsir_forgets_and_never_mutates_the_callers_model(digits, trained_digits_model):
    before = copy.deepcopy(trained_digits_model)
    result = unsir(trained_digits_model, [3], dr_sub_for(digits, [3]), digits.normalize, FAST, CPU, seed=0)
    assert state_equal(before, trained_digits_model)
    assert not state_equal(result.model, trained_digits_model)
    assert set(result.phases) == {"noise", "impair", "repair"}
    assert result.seconds >= sum(result.phases.values()) > 0
    after = accuracy_report(result.model, digits, [3], CPU)
    original = accuracy_report(trained_digits_model, digits, [3], CPU)
    assert original["forget_acc"] > 0.8
    assert after["forget_acc"] < 0.2 < after["retain_acc"]


def test_multi_class_in_one_pass(digits, trained_digits_model):
    result = unsir(trained_digits_model, [1, 5, 8], dr_sub_for(digits, [1, 5, 8]), digits.normalize, FAST, CPU)
    impair = [h for h in result.history if h["phase"] == "impair"]
    assert len(impair) == 1  # one impair epoch for all classes together
    assert accuracy_report(result.model, digits, [1, 5, 8], CPU)["forget_acc"] < 0.3


def test_same_seed_same_result(digits, trained_digits_model):
    dr = dr_sub_for(digits, [4])
    a = unsir(trained_digits_model, [4], dr, digits.normalize, FAST, CPU, seed=3)
    b = unsir(trained_digits_model, [4], dr, digits.normalize, FAST, CPU, seed=3)
    assert state_equal(a.model, b.model)


# --- zero-glance ---------------------------------------------------------------------------


def test_dr_sub_holding_a_forget_sample_is_refused(digits, trained_digits_model):
    leaky = digits.train.sample_per_class(range(10), 20, seed=0)
    with pytest.raises(ZeroGlanceViolation, match=r"Dr_sub holds samples of forget class\(es\) \[3\]"):
        unsir(trained_digits_model, [3], leaky, digits.normalize, FAST, CPU)


def test_unlearning_code_that_reads_a_forget_sample_fails(digits, trained_digits_model, monkeypatch):
    """If anyone changes a step of UNSIR to read forget-class images (here: impair peeking at
    the training set for class 3, as a 'helpful' data-driven variant would), unsir fails."""
    real_impair = unsir_module.impair

    def peeking_impair(*args, **kwargs):
        full = load_dataset("digits")  # a fresh load is guarded as well
        _ = full.train.select([3]).images
        return real_impair(*args, **kwargs)

    monkeypatch.setattr(unsir_module, "impair", peeking_impair)
    with pytest.raises(ZeroGlanceViolation, match=r"forget class\(es\) \[3\]"):
        unsir(trained_digits_model, [3], dr_sub_for(digits, [3]), digits.normalize, FAST, CPU)


def test_unlearning_code_that_reads_a_mixed_batch_fails(digits, trained_digits_model, monkeypatch):
    """Reading any split that still contains forget samples, even to use retained ones, fails."""
    real_repair = unsir_module.repair

    def repair_on_test_split(*args, **kwargs):
        _ = digits.test.images[:10]
        return real_repair(*args, **kwargs)

    monkeypatch.setattr(unsir_module, "repair", repair_on_test_split)
    with pytest.raises(ZeroGlanceViolation):
        unsir(trained_digits_model, [3], dr_sub_for(digits, [3]), digits.normalize, FAST, CPU)


NAME = "resnet18"  # trained_digits_model's architecture
LEVERS = replace(FAST, repair_distill=0.5, frozen_stages=2, precision="bf16")


@pytest.mark.parametrize("cfg", [FAST, LEVERS], ids=["default", "distill+frozen+bf16"])
def test_the_real_unsir_reads_only_dr_sub(digits, trained_digits_model, monkeypatch, cfg):
    """Spy on every image access while unsir runs: only retained-class tensors are read (also
    when repair distils the original's outputs, early stages are frozen and autocast is on)."""
    from unsir_core.data import ImageTensors

    seen = []
    prop = ImageTensors.images

    def spy(self):
        seen.append(self.classes_present)
        return prop.fget(self)

    monkeypatch.setattr(ImageTensors, "images", property(spy))
    dr = dr_sub_for(digits, [3])
    seen.clear()
    unsir(trained_digits_model, [3], dr, digits.normalize, cfg, CPU, model_name="resnet18")
    assert seen and all(3 not in classes for classes in seen)


# --- speed levers --------------------------------------------------------------------------


def test_distilled_targets_never_teach_a_forget_class(digits, trained_digits_model):
    dr = dr_sub_for(digits, [3, 5], per_class=5)
    x, y = digits.normalize(dr.images), dr.labels
    soft = distilled_targets(trained_digits_model, x, y, [3, 5], replace(FAST, repair_distill=0.4))
    assert soft.shape == (len(dr), 10)
    assert torch.allclose(soft.sum(1), torch.ones(len(dr)))
    assert torch.all(soft[:, [3, 5]] == 0)
    assert torch.all(soft[torch.arange(len(dr)), y] >= 0.6)  # the label keeps 1 - repair_distill at least
    assert torch.equal(
        distilled_targets(trained_digits_model, x, y, [3, 5], replace(FAST, repair_distill=0.0)),
        torch.nn.functional.one_hot(y, 10).float(),
    )


def test_frozen_stages_stay_put_and_are_trainable_afterwards(digits, trained_digits_model):
    dr = dr_sub_for(digits, [3])
    result = unsir(
        trained_digits_model,
        [3],
        dr,
        digits.normalize,
        replace(FAST, frozen_stages=2),
        CPU,
        model_name="resnet18",
    )
    before, after = trained_digits_model.state_dict(), result.model.state_dict()
    stages = model_spec("resnet18").stages(result.model)
    frozen = {id(t) for stage in stages[:2] for t in [*stage.parameters(), *stage.buffers()]}
    names = {n for n, t in [*result.model.named_parameters(), *result.model.named_buffers()] if id(t) in frozen}
    assert names and all(torch.equal(before[n], after[n]) for n in names)  # weights and BatchNorm statistics
    assert any(not torch.equal(before[n], after[n]) for n in after if n not in names)
    assert all(p.requires_grad for p in result.model.parameters())  # as in the caller's model
    frozen_head = copy.deepcopy(trained_digits_model)
    frozen_head.fc.requires_grad_(False)  # a caller's own choice survives the frozen stages
    again = unsir(frozen_head, [3], dr, digits.normalize, replace(FAST, frozen_stages=2), CPU, model_name=NAME)
    assert [p.requires_grad for p in again.model.parameters()] == [p.requires_grad for p in frozen_head.parameters()]
    assert accuracy_report(result.model, digits, [3], CPU)["forget_acc"] <= 0.05
    with pytest.raises(InvalidConfigError, match="frozen_stages must be between 1 and 5 for resnet18"):
        unsir(trained_digits_model, [3], dr, digits.normalize, replace(FAST, frozen_stages=6), CPU, model_name=NAME)
    with pytest.raises(InvalidConfigError, match="needs the model's registered name"):
        unsir(trained_digits_model, [3], dr, digits.normalize, replace(FAST, frozen_stages=1), CPU)


# --- failures ------------------------------------------------------------------------------


def test_nan_during_impair_stops_and_leaves_the_original_untouched(digits, trained_digits_model):
    model = copy.deepcopy(trained_digits_model)
    before = copy.deepcopy(model)

    def poison(module, inputs, output):  # NaN logits, but only in train mode (impair), not noise learning
        return output * float("nan") if module.training else output

    model.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError, match="impair: the loss became nan.*original model"):
        unsir(model, [3], dr_sub_for(digits, [3]), digits.normalize, FAST, CPU)
    assert state_equal(before, model)


def test_random_noise_is_the_initial_draw_and_none_leaves_dr_sub_alone(digits, trained_digits_model):
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    drawn = torch.randn(2 * FAST.noise_batch, 3, 32, 32, generator=gen())
    random, _ = learn_noise(
        trained_digits_model, [2, 7], (3, 32, 32), replace(FAST, noise="random"), CPU, generator=gen()
    )
    learned, _ = learn_noise(trained_digits_model, [2, 7], (3, 32, 32), FAST, CPU, generator=gen())
    assert torch.equal(random, drawn) and not torch.equal(learned, drawn)

    dr = dr_sub_for(digits, [3])
    dr_x, dr_y = digits.normalize(dr.images), dr.labels
    noise, labels = learn_noise(trained_digits_model, [3], (3, 32, 32), FAST, CPU, generator=gen())
    seen = {}
    for kind in ("error_max", "none"):
        model, cfg = copy.deepcopy(trained_digits_model), replace(FAST, noise=kind)
        seen[kind] = impair(model, noise, labels, dr_x, dr_y, cfg, CPU, generator=gen()).samples
    assert seen == {"error_max": len(dr) + FAST.noise_batch, "none": len(dr)}  # "none": Dr_sub and nothing else
    result = unsir(trained_digits_model, [3], dr, digits.normalize, replace(FAST, noise="none"), CPU)
    assert accuracy_report(result.model, digits, [3], CPU)["forget_acc"] <= 1.0


def test_noise_takes_only_its_three_values():
    from unsir_core.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="noise must be one of error_max, random, none"):
        UnsirConfig(noise="gaussian")


@pytest.mark.parametrize("name", ["vit", "allcnn", "mobilenetv2"])
def test_frozen_stages_run_on_every_model_whatever_its_feature_shape(name, digits):
    """The ViT's frozen stages output tokens (B, T, D), not feature maps: the impair set still
    joins the noise to Dr_sub (the fast preset once crashed here on the CIFAR-10 ViT)."""
    from unsir_core.models import create_model, stage_count

    torch.manual_seed(0)
    model = create_model(name, digits.num_classes)
    cfg = replace(FAST, frozen_stages=stage_count(name) - 1, noise_copies=2)
    result = unsir(model, [3], dr_sub_for(digits, [3], per_class=8), digits.normalize, cfg, CPU, model_name=name)
    assert set(result.phases) >= {"noise", "impair", "repair"}

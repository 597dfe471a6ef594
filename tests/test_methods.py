"""Every unlearning method through the one registry and signature, on digits."""

import copy

import pytest
import torch

from unsir_core.errors import UnknownNameError, ZeroGlanceViolation
from unsir_core.methods import get_method, list_methods, method_config, unlearn
from unsir_core.metrics import accuracy_report

from .conftest import state_equal

CPU = torch.device("cpu")
SMALL = {
    "unsir": {"dr_sub_per_class": 40, "noise_batch": 16, "noise_steps": 5},
    "unsir_random_noise": {"dr_sub_per_class": 40, "noise_batch": 16},
    "unsir_no_noise": {"dr_sub_per_class": 40},
    "retrain": {"epochs": 1, "batch_size": 64, "lr": 1e-3, "grad_clip_value": None, "scheduler": "none"},
    "finetune": {"epochs": 1, "lr": 0.005},
    "fisher": {"samples": 64, "holdout": 200},
    "random_labels": {"epochs": 1},
    "salun": {"epochs": 1},
    "scrub": {"rounds": 1},
    # on this quickly trained model the alpha that forgets costs SSD ~24 points, which its search
    # refuses (tests/test_ssd.py); here only the copy and the timing are tested
    "ssd": {"retain_tolerance": 1.0},
}


def test_registry_has_the_papers_baselines_and_declares_glance():
    names = set(list_methods())
    assert {"unsir", "retrain", "finetune", "neggrad", "fisher"} <= names
    assert {"amnesiac", "bad_teacher", "random_labels", "scrub", "ssd", "salun"} <= names
    assert not get_method("unsir").reads_forget and not get_method("fisher").reads_forget
    assert all(get_method(n).reads_forget for n in ("neggrad", "random_labels", "scrub", "ssd", "salun"))
    with pytest.raises(UnknownNameError, match="unknown method 'magic'"):
        get_method("magic")


@pytest.mark.parametrize("name", list_methods())
def test_every_method_runs_on_a_copy_and_reports_time(name, digits, trained_digits_model):
    before = copy.deepcopy(trained_digits_model)
    cfg = method_config(name, "digits", "resnet18", SMALL.get(name))
    result = unlearn(name, trained_digits_model, "resnet18", digits, (3,), CPU, cfg, seed=0)
    assert state_equal(before, trained_digits_model)
    assert not state_equal(result.model, trained_digits_model)  # it did change the copy
    assert result.seconds > 0
    assert result.phases and min(result.phases.values()) >= 0, result.phases
    assert sum(result.phases.values()) <= result.seconds * 1.001  # phases are parts of the wall time
    acc = accuracy_report(result.model, digits, [3], CPU)
    assert 0 <= acc["forget_acc"] <= 1 and 0 <= acc["retain_acc"] <= 1


@pytest.mark.parametrize("name", [m for m in list_methods() if get_method(m).reads_forget])
def test_a_method_reading_forget_data_gets_it_only_by_declaring_so(name, digits, trained_digits_model, monkeypatch):
    """Declared zero-glance, a method that needs forget samples has none to read: the task has
    no forget set and the guard refuses any other way to the forget classes' images."""
    from dataclasses import replace

    from unsir_core import methods as registry

    monkeypatch.setitem(registry._METHODS, name, replace(get_method(name), reads_forget=False))
    cfg = method_config(name, "digits", "resnet18", SMALL.get(name))
    with pytest.raises((AttributeError, TypeError, ZeroGlanceViolation)) as caught:
        unlearn(name, trained_digits_model, "resnet18", digits, (3,), CPU, cfg, seed=0)
    assert caught.type is ZeroGlanceViolation or "'NoneType'" in str(caught.value), caught.value  # task.forget


def test_zero_glance_methods_never_receive_forget_samples(digits, trained_digits_model, monkeypatch):
    seen = {}
    method = get_method("finetune")

    def spy(task, cfg):
        seen["forget"] = task.forget
        seen["retain_classes"] = task.retain.classes_present
        return method.run(task, cfg)

    from unsir_core import methods as registry

    monkeypatch.setitem(registry._METHODS, "finetune", type(method)(method.name, spy, method.config, False, ""))
    unlearn(
        "finetune",
        trained_digits_model,
        "resnet18",
        digits,
        (3,),
        CPU,
        method_config("finetune", "digits", "x", {"epochs": 1}),
    )
    assert seen["forget"] is None and 3 not in seen["retain_classes"]


def test_unsir_forgets_on_digits_through_the_registry(digits, trained_digits_model):
    result = unlearn("unsir", trained_digits_model, "resnet18", digits, (3,), CPU, seed=0)
    assert accuracy_report(result.model, digits, [3], CPU)["forget_acc"] < 0.1


def test_unsir_is_listed_first_and_the_gold_standard_is_not_an_unlearning_method():
    from unsir_core.methods import unlearning_methods

    assert list_methods()[0] == "unsir"
    gold = [m for m in list_methods() if get_method(m).gold_standard]
    assert gold == ["retrain"] and unlearning_methods() == [m for m in list_methods() if m != "retrain"]


def test_presets_are_declared_by_the_method():
    from unsir_core.unsir import UnsirConfig
    from unsir_core.unsir_method import default_unsir

    assert method_config("unsir", "cifar10", "resnet18", preset="official") == UnsirConfig.official()
    assert method_config("unsir", "digits", "resnet18") == default_unsir("digits", "resnet18")
    assert method_config("retrain", "digits", "resnet18").epochs == 3  # the data set's recipe, not CIFAR's
    with pytest.raises(UnknownNameError, match="neggrad has no preset 'official'"):
        method_config("neggrad", "cifar10", "resnet18", preset="official")


def test_tuned_defaults_follow_the_recipe_set_the_model_was_trained_with():
    from unsir_core.errors import InvalidConfigError
    from unsir_core.experiment import ExperimentConfig
    from unsir_core.recipes import RECIPE_SETS, default_recipe
    from unsir_core.unsir_method import UNSIR_DEFAULT_SETS, default_unsir

    assert set(UNSIR_DEFAULT_SETS) == set(RECIPE_SETS)  # every recipe set has its tuned UNSIR
    official, fast = (method_config("unsir", "cifar10", "resnet18", recipes=r) for r in ("official", "fast"))
    assert official == default_unsir("cifar10", "resnet18") and official.impair_lr == 0.015
    assert (fast.impair_lr, fast.repair_lr) == (1e-3, 1e-4)  # the fast models are more fragile
    assert method_config("unsir_no_noise", "cifar10", "resnet18", recipes="fast").impair_lr == 1e-3
    assert method_config("retrain", "cifar10", "resnet18", recipes="fast") == default_recipe(
        "cifar10", "resnet18", "fast"
    )
    # digits trains the same in both sets, so UNSIR's digits defaults are the same too
    assert default_unsir("digits", "resnet18", "fast") == default_unsir("digits", "resnet18")
    # the official preset is the paper's whatever the recipe
    assert method_config("unsir", "cifar10", "resnet18", preset="official", recipes="fast") == method_config(
        "unsir", "cifar10", "resnet18", preset="official"
    )
    with pytest.raises(InvalidConfigError, match="unknown recipe set 'quick'"):
        method_config("unsir", "cifar10", "resnet18", recipes="quick")
    # the fast preset: the tuned config of the same recipe set with the speed levers
    quick = method_config("unsir", "cifar10", "resnet18", preset="fast", recipes="fast")
    assert (quick.impair_lr, quick.dr_sub_per_class, quick.frozen_stages, quick.repair_epochs) == (1e-3, 500, 3, 1)
    assert method_config("unsir", "digits", "resnet18", preset="fast").freeze_bn  # digits' tuned, then the levers
    # the calibrated preset: the fast preset's passes with twice its Dr_sub, whatever the recipe set
    calibrated = method_config("unsir", "cifar10", "resnet18", preset="calibrated", recipes="fast")
    assert calibrated == method_config("unsir", "cifar10", "resnet18", preset="calibrated")
    assert calibrated.calibrate and (calibrated.dr_sub_per_class, calibrated.frozen_stages) == (1000, 3)
    assert (calibrated.noise_steps, calibrated.repair_epochs) == (quick.noise_steps, quick.repair_epochs)
    # an experiment's recipe set picks both the models' recipe and the methods' defaults
    cfg = ExperimentConfig("cifar10", "resnet18", (3,), recipes="fast", methods=("unsir", "unsir_no_noise"))
    assert cfg.recipe() == default_recipe("cifar10", "resnet18", "fast")
    assert cfg.method_config("unsir") == fast and cfg.method_config("unsir_no_noise").impair_lr == 1e-3
    with pytest.raises(InvalidConfigError, match="unknown recipe set"):
        ExperimentConfig("cifar10", "resnet18", (3,), recipes="quick")


def test_the_noise_ablations_are_unsir_with_only_the_noise_changed():
    from dataclasses import replace

    from unsir_core.experiment import ExperimentConfig
    from unsir_core.unsir import UnsirConfig
    from unsir_core.unsir_method import default_unsir

    for name, noise in (("unsir_random_noise", "random"), ("unsir_no_noise", "none")):
        assert not get_method(name).reads_forget
        assert method_config(name, "digits", "resnet18") == replace(default_unsir("digits", "resnet18"), noise=noise)
        assert method_config(name, "x", "y", preset="official") == replace(UnsirConfig.official(), noise=noise)
    # in an experiment they follow UNSIR's config, its changes included
    cfg = ExperimentConfig(
        "digits",
        "resnet18",
        (3,),
        methods=("unsir", "unsir_no_noise"),
        method_configs={"unsir": UnsirConfig.official()},
        method_overrides=(("unsir", "impair_lr", 0.003), ("unsir_no_noise", "rounds", 2)),
    )
    assert cfg.method_config("unsir_no_noise") == replace(
        UnsirConfig.official(), impair_lr=0.003, noise="none", rounds=2
    )


def test_the_headline_method_is_declared_once_and_knows_its_ablations():
    from unsir_core.methods import headline_method, register_method

    headline = headline_method()
    assert headline.name == "unsir" and headline.variants() == ["unsir_random_noise", "unsir_no_noise"]
    assert not get_method("unsir_no_noise").headline  # a variant is not the headline method
    with pytest.raises(ValueError, match="headline method already"):
        register_method("other", headline.config, reads_forget=False, summary="-", headline=True)(lambda t, c: None)
    assert headline_method() is headline

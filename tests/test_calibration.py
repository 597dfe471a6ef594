"""Calibrated UNSIR: step sizes chosen for the model from retained data only, on digits."""

import copy
from dataclasses import replace

import pytest
import torch

from unsir_core.calibration import (
    CalibrationError,
    _search,
    calibrated_unsir,
    forget_probes,
    holdout_size,
    ladder,
    top_up_epochs,
)
from unsir_core.data import ImageTensors, retained_classes
from unsir_core.errors import ZeroGlanceViolation
from unsir_core.experiment import ExperimentConfig
from unsir_core.methods import UnlearningTask, get_method, method_config
from unsir_core.unsir import UnsirConfig, impair_and_repair, prepare

from .conftest import state_equal

pytestmark = pytest.mark.slow  # each test runs the calibration's trials

CPU = torch.device("cpu")
NAME = "resnet18"  # trained_digits_model's architecture
# digits' calibrated preset with less work per trial (the choice, not the quality, is tested here)
QUICK = replace(method_config("unsir", "digits", "resnet18", preset="calibrated"), noise_steps=5, calibration_probes=16)


def split(digits, forget, cfg=QUICK):
    retain = retained_classes(forget, 10)
    holdout, rest = digits.train.split_per_class(retain, holdout_size(cfg), seed=0)
    return rest.sample_per_class(retain, cfg.dr_sub_per_class, seed=0), holdout


def chosen(result) -> dict:
    return next(h for h in result.history if h.get("chosen"))


def test_the_calibrated_preset_is_the_default_for_a_model_of_unknown_recipe(tmp_path):
    known = ExperimentConfig("digits", "resnet18", (3,), methods=("unsir", "unsir_no_noise"))
    brought = replace(known, original_checkpoint=str(tmp_path / "mine.pt"))
    assert not known.method_config("unsir").calibrate
    assert brought.method_config("unsir").calibrate and brought.method_config("unsir_no_noise").calibrate
    assert brought.method_config("unsir_no_noise").noise == "none"  # the ablation keeps its one change
    assert not replace(brought, presets={"unsir": "tuned"}).method_config("unsir").calibrate  # a choice wins


def test_the_ladder_spans_the_range_in_steps_of_sqrt_10():
    rates = ladder(UnsirConfig(calibration_lr_min=1e-4, calibration_lr_max=0.03))
    assert rates[0] == 1e-4 and len(rates) == 5 and rates[-1] == pytest.approx(1e-2)
    assert all(b / a == pytest.approx(10**0.5) for a, b in zip(rates, rates[1:], strict=False))
    with pytest.raises(Exception, match="calibration_lr_max"):
        UnsirConfig(calibration_lr_min=0.1, calibration_lr_max=0.01)


def test_holdout_and_dr_sub_are_disjoint_retained_samples(digits):
    dr_sub, holdout = split(digits, [3])
    assert 3 not in dr_sub.classes_present | holdout.classes_present
    a = {x.numpy().tobytes() for x in dr_sub.images}
    b = {x.numpy().tobytes() for x in holdout.images}
    assert not a & b
    counts = torch.bincount(holdout.labels, minlength=10)
    assert counts[3] == 0 and all(0 < counts[c] <= 0.2 * (digits.train.labels == c).sum() for c in range(10) if c != 3)


def test_calibration_reads_no_forget_sample(digits, trained_digits_model, monkeypatch):
    """The spy sees every image read while the registered method calibrates and unlearns."""
    seen = []
    prop = ImageTensors.images

    def spy(self):
        seen.append(self.classes_present)
        return prop.fget(self)

    task = UnlearningTask(
        trained_digits_model, "resnet18", (3,), 10, digits.train.select(retained_classes([3], 10)), None,
        digits.normalize, CPU,
    )  # fmt: skip
    monkeypatch.setattr(ImageTensors, "images", property(spy))
    result = get_method("unsir").run(task, QUICK)
    assert seen and all(3 not in classes for classes in seen)
    assert any(h["phase"] == "calibration" for h in result.history)


def test_a_calibration_that_peeks_at_a_forget_sample_fails(digits, trained_digits_model, monkeypatch):
    import unsir_core.calibration as calibration

    real = calibration.forget_probes

    def peeking(*args, **kwargs):
        _ = digits.test.images[:10]  # the test split holds class 3
        return real(*args, **kwargs)

    monkeypatch.setattr(calibration, "forget_probes", peeking)
    dr_sub, holdout = split(digits, [3])
    with pytest.raises(ZeroGlanceViolation):
        calibrated_unsir(
            trained_digits_model, [3], dr_sub, holdout, digits.normalize, QUICK, CPU, model_name="resnet18"
        )


def plain_run(model, digits, dr_sub, cfg, pick, seed):
    """Uncalibrated UNSIR at the rates and repair epochs of the calibration's chosen trial."""
    from unsir_core import unsir

    rates = {k: pick[k] for k in ("impair_lr", "repair_lr", "repair_epochs")}
    return unsir(model, [3], dr_sub, digits.normalize, replace(cfg, calibrate=False, **rates), CPU, seed=seed,
                 model_name="resnet18")  # fmt: skip


def test_the_chosen_trial_is_the_uncalibrated_run_at_its_step_size(digits, trained_digits_model):
    """Calibration only chooses: the model it returns is UNSIR's at the chosen rates, same seed
    (a Dr_sub of full classes: no top-up)."""
    cfg = replace(QUICK, dr_sub_per_class=50)
    dr_sub, holdout = split(digits, [3], cfg)
    before = copy.deepcopy(trained_digits_model)
    result = calibrated_unsir(
        trained_digits_model, [3], dr_sub, holdout, digits.normalize, cfg, CPU, seed=2, model_name="resnet18"
    )
    pick = chosen(result)
    assert not any(h["phase"] == "calibration_top_up" for h in result.history)
    assert state_equal(result.model, plain_run(trained_digits_model, digits, dr_sub, cfg, pick, seed=2).model)
    assert state_equal(before, trained_digits_model)  # the caller's model is untouched
    assert pick["forgets"] and pick["keeps"] and pick["signal"] <= QUICK.forget_signal_max
    assert set(result.phases) == {"noise", "calibration", "impair", "repair"}
    assert min(result.phases.values()) >= 0 and sum(result.phases.values()) <= result.seconds


def test_the_top_up_makes_up_the_repair_a_small_data_set_lacks():
    cfg = UnsirConfig(dr_sub_per_class=1000, repair_epochs=1)
    assert top_up_epochs(cfg, 9000, 9, 1) == 0  # a full Dr_sub: one epoch is what the preset asks
    assert top_up_epochs(cfg, 9000, 9, 2) == 0  # the search already repaired longer
    assert top_up_epochs(cfg, 1040, 9, 1) == 8  # digits' ~115 images a class: nine epochs' worth
    assert top_up_epochs(cfg, 1040, 9, 2) == 7
    assert top_up_epochs(replace(cfg, repair_epochs=2), 4500, 9, 2) == 2


def test_a_small_data_sets_chosen_trial_is_repaired_further_when_that_keeps(digits, trained_digits_model):
    dr_sub, holdout = split(digits, [3])  # digits holds far fewer than the preset's 1,000 images a class
    result = calibrated_unsir(
        trained_digits_model, [3], dr_sub, holdout, digits.normalize, QUICK, CPU, seed=2, model_name="resnet18"
    )
    pick, top = chosen(result), next(h for h in result.history if h["phase"] == "calibration_top_up")
    assert top["top_up_epochs"] == top_up_epochs(QUICK, len(dr_sub), 9, pick["repair_epochs"]) > 0
    assert top["repair_epochs"] == pick["repair_epochs"] + top["top_up_epochs"]
    assert top["taken"] == (top["signal"] <= QUICK.forget_signal_max and top["retain_drop"] <= pick["retain_drop"])
    plain = plain_run(trained_digits_model, digits, dr_sub, QUICK, pick, seed=2).model
    assert state_equal(result.model, plain) != top["taken"]
    assert min(result.phases.values()) >= 0 and sum(result.phases.values()) <= result.seconds


def test_a_top_up_that_costs_held_out_accuracy_is_not_taken(digits, trained_digits_model, monkeypatch):
    import unsir_core.calibration as calibration

    def wrecking_repair(model, *args, **kwargs):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0)

    monkeypatch.setattr(calibration, "repair", wrecking_repair)
    dr_sub, holdout = split(digits, [3])
    result = calibrated_unsir(
        trained_digits_model, [3], dr_sub, holdout, digits.normalize, QUICK, CPU, seed=2, model_name="resnet18"
    )
    top = next(h for h in result.history if h["phase"] == "calibration_top_up")
    assert not top["taken"] and top["retain_drop"] > 0.5
    plain = plain_run(trained_digits_model, digits, dr_sub, QUICK, chosen(result), seed=2).model
    assert state_equal(result.model, plain)


def test_a_setting_that_costs_too_much_is_judged_after_its_top_up(digits, trained_digits_model, monkeypatch):
    """Held-out scores faked: every trial costs 20 points (too much), the top-up's model 1."""
    import unsir_core.calibration as calibration

    topped = []
    real_repair, real_score = calibration.repair, calibration._Scorer.score

    def top_up(model, *args, **kwargs):
        real_repair(model, *args, **kwargs)
        topped.append(model)

    def score(self, model):
        return {**real_score(self, model), "signal": 0.0, "retain_drop": 0.01 if model in topped else 0.2}

    monkeypatch.setattr(calibration, "repair", top_up)
    monkeypatch.setattr(calibration._Scorer, "score", score)
    dr_sub, holdout = split(digits, [3])
    result = calibrated_unsir(
        trained_digits_model, [3], dr_sub, holdout, digits.normalize, QUICK, CPU, seed=2, model_name="resnet18"
    )
    assert next(h for h in result.history if h["phase"] == "calibration_top_up")["taken"]
    full = replace(QUICK, dr_sub_per_class=50)  # full classes: no top-up, the 20 points stand
    dr_sub, holdout = split(digits, [3], full)
    with pytest.raises(CalibrationError, match="impair lr"):
        calibrated_unsir(trained_digits_model, [3], dr_sub, holdout, digits.normalize, full, CPU, model_name=NAME)


def _table(rows: dict) -> tuple[list, object]:
    """A fake trial function over {(rung, extra repair epochs): (signal, held-out drop)} that
    records what the search asked for (forgets: signal 0, keeps: drop <= 0.05)."""
    asked = []

    def trial(i: int, more_repair: int = 0) -> dict:
        asked.append((i, more_repair))
        signal, drop = rows[i, more_repair]
        return {"signal": signal, "retain_drop": drop, "forgets": signal <= 0, "keeps": drop <= 0.05}

    return asked, trial


def test_the_search_takes_the_gentlest_rate_that_forgets():
    asked, trial = _table({(0, 0): (0.3, 0.0), (1, 0): (0.01, 0.01), (2, 0): (0.0, 0.0), (3, 0): (0.0, 0.02)})
    assert _search(trial, 4, 1, exhaustive=False) == (2, 0)  # costs nothing: no gentler try
    assert set(asked) == {(1, 0), (2, 0)}
    asked, trial = _table({(0, 0): (0.0, 0.0), (1, 0): (0.0, 0.01), (2, 0): (0.0, 0.03)})
    assert _search(trial, 3, 2, exhaustive=False) == (0, 0)  # down while the gentler one forgets
    _, trial = _table({(0, 0): (0.1, 0.0), (1, 0): (0.2, 0.0)})
    assert _search(trial, 2, 0, exhaustive=False) is None  # nothing forgets


def test_a_costly_rate_gives_way_to_a_gentler_one_with_a_longer_repair():
    # the rung below did not forget with one repair epoch, and does with two at a smaller cost
    rows = {(0, 0): (0.01, 0.03), (0, 1): (0.0, 0.02), (1, 0): (0.0, 0.045)}
    assert _search(_table(rows)[1], 2, 0, exhaustive=False) == (0, 1)
    # with two it still does not forget: the costly rate stays (it keeps: no longer repair tried)
    rows[0, 1] = (0.01, 0.01)
    asked, trial = _table(rows)
    assert _search(trial, 2, 0, exhaustive=False) == (1, 0) and (1, 1) not in asked
    # a rate that forgets but does not keep gets one more repair epoch as the last try
    rows.update({(1, 0): (0.0, 0.08), (1, 1): (0.0, 0.04)})
    assert _search(_table(rows)[1], 2, 0, exhaustive=False) == (1, 1)


def test_probes_are_classified_as_their_forget_class_by_the_original(digits, trained_digits_model):
    holdout = digits.train.select(retained_classes([3], 10))
    x = digits.normalize(holdout.images[:200])
    with torch.no_grad():
        logits = trained_digits_model.eval()(x)
    probes, labels = forget_probes(trained_digits_model, x, logits, [3], 16, margin=2.0)
    assert probes.shape == (16, *x.shape[1:]) and labels.tolist() == [3] * 16
    with torch.no_grad():
        out = trained_digits_model(probes)
    assert (out.argmax(1) == 3).float().mean() >= 0.9
    assert all(p.requires_grad for p in trained_digits_model.parameters())  # gradients switched back on


def _fragile(model: torch.nn.Module) -> torch.nn.Module:
    """The same function, 10x more fragile under Adam: every convolution's weights scaled by 0.1
    and the running statistics of the BatchNorm after it to match (in ResNet18 each convolution
    feeds one), so predictions are unchanged, but a step of a given size moves the weights 10x
    further relative to their size."""
    fragile = copy.deepcopy(model)
    with torch.no_grad():
        for module in fragile.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(0.1)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.mul_(0.1)
                module.running_var.mul_(0.01)
    return fragile


def test_a_fragile_model_gets_a_smaller_step_than_a_robust_one(digits, trained_digits_model):
    fragile = _fragile(trained_digits_model)
    x = digits.normalize(digits.test.images[:300])
    with torch.no_grad():
        same = (fragile.eval()(x).argmax(1) == trained_digits_model.eval()(x).argmax(1)).float().mean()
    assert same > 0.97  # the same classifier
    dr_sub, holdout = split(digits, [3])
    picks = {}
    for name, model in (("robust", trained_digits_model), ("fragile", fragile)):
        result = calibrated_unsir(model, [3], dr_sub, holdout, digits.normalize, QUICK, CPU, model_name="resnet18")
        picks[name] = chosen(result)["impair_lr"]
    assert picks["fragile"] < picks["robust"]


def test_no_setting_that_works_is_said_plainly(digits, trained_digits_model):
    dr_sub, holdout = split(digits, [3])
    too_gentle = replace(QUICK, calibration_lr_min=1e-7, calibration_lr_max=1e-7, calibration_lr_start=1e-7)
    with pytest.raises(CalibrationError, match=r"found no impair learning rate .* no model is returned\. Tried: "):
        calibrated_unsir(trained_digits_model, [3], dr_sub, holdout, digits.normalize, too_gentle, CPU,
                         model_name="resnet18")  # fmt: skip
    wrecking = replace(QUICK, calibration_lr_min=0.3, calibration_lr_max=0.3, calibration_lr_start=0.3)
    tried_both = (
        r"impair lr 0\.3 with 1 repair epoch\(s\): signal .*, held-out retained accuracy .*; "
        r"impair lr 0\.3 with 2"
    )
    with pytest.raises(CalibrationError, match=tried_both):
        calibrated_unsir(trained_digits_model, [3], dr_sub, holdout, digits.normalize, wrecking, CPU,
                         model_name="resnet18")  # fmt: skip


def test_impair_and_repair_on_a_copy_leave_the_prepared_model_alone(digits, trained_digits_model):
    dr_sub, _ = split(digits, [3])
    gen = torch.Generator().manual_seed(0)
    prep = prepare(trained_digits_model, [3], dr_sub, digits.normalize, QUICK, CPU, gen, model_name="resnet18")
    before = copy.deepcopy(prep.trained)
    trial = copy.deepcopy(prep.trained)
    impair_and_repair(trial, prep, QUICK, CPU, gen, phases={"impair": 0.0, "repair": 0.0}, history=[])
    assert state_equal(before, prep.trained) and not state_equal(before, trial)

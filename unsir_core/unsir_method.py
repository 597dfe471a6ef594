"""UNSIR as a registered method: its presets (the default tables, ``fast``, ``official``,
``calibrated``) and the method entry with its noise ablations. The algorithm is ``unsir.py``;
the calibration of its step sizes for an unknown model is ``calibration.py``.

The tables are keyed by (data set, model) and the recipe set the model was trained with, and
hold only for models trained that way: a model whose recipe is unknown (an upload,
``--original``) gets the ``calibrated`` preset (``Method.unknown_model_preset``).
"""

from __future__ import annotations

from dataclasses import replace

from .calibration import calibrated_unsir, holdout_size
from .config import lookup
from .data import retained_classes
from .errors import InvalidConfigError
from .methods import UnlearningTask, UnlearnResult, register_method, register_variant
from .unsir import UnsirConfig, check_config, unsir

_DIGITS = UnsirConfig(noise_batch=64, batch_size=64, impair_lr=5e-4, repair_lr=1e-3, repair_epochs=3, freeze_bn=True)

# Defaults keyed by (data set, model), "*" matching any; see default_unsir().
UNSIR_DEFAULTS: dict[tuple[str, str], UnsirConfig] = {
    ("*", "*"): UnsirConfig(),
    # digits has ~130 training images per class: Dr_sub is all of them, batches of 64 give the
    # epochs enough steps, and the CIFAR impair lr and noise-skewed BatchNorm statistics cost
    # retained accuracy there (NOTES, "Tuning UNSIR's defaults").
    ("digits", "*"): _DIGITS,
    # Three stages frozen and one repair epoch keep more of the digits ResNet18's retained
    # classes in half the time (sweep_digits_resnet18_levers.json); other models not measured.
    ("digits", "resnet18"): replace(_DIGITS, frozen_stages=3, repair_epochs=1),
    # MobileNetV2 is far more fragile than ResNet18 under impair and repair, and frozen BatchNorm
    # statistics make it worse (sweep_cifar10_mobilenetv2_*.json).
    ("*", "mobilenetv2"): UnsirConfig(impair_lr=1e-3, repair_lr=3e-4),
    # Fashion-MNIST's models train with fast one-cycle recipes (in both sets), as fragile under
    # impair as the fast CIFAR-10 ones (sweep_fashionmnist_resnet18_defaults.json); MobileNetV2
    # keeps its own, which the data set's entry would otherwise shadow.
    ("fashionmnist", "*"): UnsirConfig(impair_lr=1e-3, repair_lr=1e-4),
    ("fashionmnist", "mobilenetv2"): UnsirConfig(impair_lr=1e-3, repair_lr=3e-4),
}


# The fast recipe set's models (one-cycle SGD with augmentation) are far more fragile under
# impair than the official set's (Adam, no augmentation) the table above was tuned on
# (sweep_cifar10_resnet18_fast_impair.json).
FAST_UNSIR_DEFAULTS: dict[tuple[str, str], UnsirConfig] = {
    **UNSIR_DEFAULTS,
    ("*", "*"): UnsirConfig(impair_lr=1e-3, repair_lr=1e-4),
}

# Tuned defaults by the recipe set the model was trained with (the keys of RECIPE_SETS).
UNSIR_DEFAULT_SETS: dict[str, dict[tuple[str, str], UnsirConfig]] = {
    "official": UNSIR_DEFAULTS,
    "fast": FAST_UNSIR_DEFAULTS,
}


def default_unsir(dataset: str, model: str, recipes: str = "official") -> UnsirConfig:
    """The tuned UNSIR hyper-parameters for ``model`` on ``dataset``, trained with the recipe
    set ``recipes``."""
    if recipes not in UNSIR_DEFAULT_SETS:
        raise InvalidConfigError(f"unknown recipe set {recipes!r}; choose one of: {', '.join(UNSIR_DEFAULT_SETS)}")
    return lookup(UNSIR_DEFAULT_SETS[recipes], dataset, model)


# The "fast" preset: the tuned config with the levers that bought speed without costing quality
# on the fast-recipe CIFAR-10 ResNet18 (the first three stages' outputs computed once);
# sweep_cifar10_resnet18_fast_all.json, the levers one at a time in
# sweep_cifar10_resnet18_fast_{levers,presets}.json. bf16 and distillation did not pay reliably.
FAST_CHANGES = {"dr_sub_per_class": 500, "repair_epochs": 1, "noise_steps": 10, "frozen_stages": 3}


def fast_unsir(dataset: str, model: str, recipes: str = "official") -> UnsirConfig:
    """The tuned config of ``model`` on ``dataset`` (recipe set ``recipes``) with the speed
    levers of :data:`FAST_CHANGES`, for a model that registers enough stages."""
    return replace(default_unsir(dataset, model, recipes), **FAST_CHANGES)


# The "calibrated" preset: the fast preset's passes (the calibration tries several settings, so
# each must be cheap) on the data set's and model's table entry, with the step sizes chosen for
# the model by calibration.py instead of the table's (bench/results/zoo*.json). Its Dr_sub is
# twice the fast preset's: that closes most of the gap to the tuned preset's retained accuracy at
# a fraction of its time (bench/results/sweep_cifar10_resnet18_fast_calibrated_dr_sub_cpu.json).
CALIBRATED_CHANGES = {**FAST_CHANGES, "dr_sub_per_class": 1000, "calibrate": True}


def calibrated_unsir_config(dataset: str, model: str, recipes: str = "official") -> UnsirConfig:
    """The config with which UNSIR calibrates its step sizes for the model it is given: the
    recipe set is not used (the model's recipe is what calibration stands in for)."""
    return replace(lookup(UNSIR_DEFAULTS, dataset, model), **CALIBRATED_CHANGES)


@register_method(
    "unsir",
    UnsirConfig,
    reads_forget=False,
    summary="error-maximising noise, one impair and one repair epoch",
    presets={
        "tuned": default_unsir,
        "fast": fast_unsir,
        "official": lambda dataset, model, recipes: UnsirConfig.official(),
        "calibrated": calibrated_unsir_config,
    },
    unknown_model_preset="calibrated",
    check=check_config,
    headline=True,
    flag_names={"batch_size": "unsir_batch_size"},  # training has its own batch size
    preset_help="tuned: this project's defaults for the data set, model and --recipe set; fast: those with fewer "
    "passes (500 per class in Dr_sub, 1 repair epoch, 10 noise steps, 3 stages frozen); official: the paper "
    "notebook's values; calibrated: fast's passes with 1000 per class in Dr_sub, impair and repair lr chosen "
    "for the model on held-out retained images (docs/method.md). Default: tuned, or calibrated with --original "
    "(its recipe is unknown)",
)
def _unsir_method(task: UnlearningTask, cfg: UnsirConfig) -> UnlearnResult:
    retain = retained_classes(task.forget_classes, task.num_classes)
    common = dict(seed=task.seed, progress=task.progress, model_name=task.model_name)
    if not cfg.calibrate:
        dr_sub = task.retain.sample_per_class(retain, cfg.dr_sub_per_class, seed=task.seed)
        return unsir(task.model, task.forget_classes, dr_sub, task.normalize, cfg, task.device, **common)
    # the held-out slice that scores each setting is never part of Dr_sub
    holdout, rest = task.retain.split_per_class(retain, holdout_size(cfg), seed=task.seed)
    dr_sub = rest.sample_per_class(retain, cfg.dr_sub_per_class, seed=task.seed)
    return calibrated_unsir(
        task.model, task.forget_classes, dr_sub, holdout, task.normalize, cfg, task.device, **common
    )


# The ablations of the noise, as methods of their own so that one experiment puts them beside
# UNSIR: each takes UNSIR's config (and its changes) with only ``noise`` changed.
register_variant(
    "unsir_random_noise",
    of="unsir",
    changes={"noise": "random"},
    summary="ablation: UNSIR with random noise, not optimised",
)
register_variant(
    "unsir_no_noise", of="unsir", changes={"noise": "none"}, summary="ablation: impair and repair without noise"
)

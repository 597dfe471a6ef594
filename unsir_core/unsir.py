"""UNSIR: Unlearning by Selective Impair and Repair (Tarun et al., TNNLS 2023).

Three small steps, each usable on its own:

1. :func:`learn_noise` - one error-maximising noise batch per forget class c, minimising
   ``-CE(model(N_c), c) + lambda * mean_i ||N_c[i]||^2`` with the model in eval mode and its
   weights frozen (BatchNorm statistics are not touched). Every noise sample is labelled with
   ITS class (the official notebook labels them all 0).
2. :func:`impair` - one epoch at a high learning rate over the noise and Dr_sub, shuffled
   together: the model's knowledge of the forget classes is wrecked.
3. :func:`repair` - one epoch over Dr_sub alone restores the retained classes.

:func:`unsir` chains them on a copy of the model and never sees a forget-class sample: it is
given the model, the forget class ids and Dr_sub (a subset of the retained classes' training
data) only, it refuses a Dr_sub that holds a forget-class sample, and it runs inside
:func:`~unsir_core.data.forbid_classes`, so any read of forget-class images raises.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Knobs, knob
from .data import ImageTensors, batch_indices, forbid_classes
from .errors import InvalidClassesError, InvalidConfigError, NonFiniteLossError, ZeroGlanceViolation
from .methods import UnlearnResult
from .models import model_spec, stage_count
from .runtime import (
    PRECISIONS,
    ProgressFn,
    autocast,
    check_precision,
    grad_scaler,
    new_optimizer,
    step_counter,
    synchronize,
)
from .train import EpochStats, eval_mode, frozen, train_one_epoch

NOISE_KINDS = ("error_max", "random", "none")


@dataclass(frozen=True)
class UnsirConfig(Knobs):
    """UNSIR hyper-parameters. Defaults are tuned on the official-recipe CIFAR-10 ResNet18
    (bench/results/NOTES.md, "Tuning UNSIR's defaults"): the official values cost retained
    accuracy; a gentler impair, a repair at lr 0.001 for two epochs and a larger Dr_sub keep it.
    Dr_sub size is what buys back retain accuracy; more repair epochs do not.
    :meth:`official` gives the paper's notebook values."""

    dr_sub_per_class: int = knob(2000, "samples of each retained class in Dr_sub", min=1)
    noise_batch: int = knob(256, "noise images learned per forget class", min=1)
    noise_steps: int = knob(40, "Adam steps of noise learning", min=0)
    noise_lr: float = knob(0.1, "Adam lr of noise learning", min=0)
    noise_lambda: float = knob(0.1, "weight of the mean squared L2 norm of each noise image", min=0)
    noise_copies: int = knob(1, "times each noise batch is repeated in the impair set", min=0)
    batch_size: int = knob(256, "samples per impair / repair step", min=1)
    impair_lr: float = knob(0.015, "Adam lr of the impair epoch (high: it must wreck the class)", min=0)
    repair_lr: float = knob(0.001, "Adam lr of the repair epoch(s)", min=0)
    repair_epochs: int = knob(2, "passes over Dr_sub in each repair", min=0)
    rounds: int = knob(1, "impair + repair rounds (the noise is learned once)", min=1)
    freeze_bn: bool = knob(False, "keep BatchNorm statistics fixed in impair and repair (noise cannot skew them)")
    noise: str = knob(
        "error_max",
        "error_max: the paper's error-maximising noise; ablations: random (noise drawn, not optimised) or "
        "none (the impair epoch's batches with their noise samples taken out: Dr_sub alone, same shuffle)",
        choices=NOISE_KINDS,
    )
    precision: str = knob(
        "fp32", "fp32, or bf16 / fp16 (CUDA) mixed precision in noise, impair and repair", choices=PRECISIONS
    )
    repair_distill: float = knob(
        0.0,
        "share of the repair targets taken from the original model's outputs on Dr_sub (forget classes "
        "masked out); 0: the labels alone",
        min=0,
        max=1,
    )
    distill_temperature: float = knob(2.0, "softmax temperature of the original model's outputs in repair", above=0)
    frozen_stages: int = knob(
        0, "leading stages of the model kept frozen in impair and repair (their outputs computed once)", min=0
    )
    # calibration (calibration.py): impair_lr and repair_lr chosen for the model, zero-glance
    calibrate: bool = knob(
        False, "choose impair_lr / repair_lr for this model on held-out retained images (preset calibrated)"
    )
    calibration_holdout: int = knob(
        100, "retained training images per class held out of Dr_sub to score each setting (at most 1/5)", min=1
    )
    calibration_lr_min: float = knob(1e-4, "gentlest impair lr calibration tries", above=0)
    calibration_lr_max: float = knob(0.01, "strongest impair lr calibration tries (steps of sqrt(10))", above=0)
    calibration_lr_start: float = knob(1e-3, "impair lr calibration tries first (the nearest step)", above=0)
    repair_ratio: float = knob(0.1, "repair lr as a share of the impair lr, when calibrating", above=0)
    calibration_probes: int = knob(
        256, "calibration: forget-class probes per class, pushed from the retained look-alikes", min=1
    )
    probe_quantile: float = knob(
        0.5,
        "calibration: probes are pushed to this quantile of the original's margins on held-out images",
        min=0,
        max=1,
    )
    forget_signal_max: float = knob(
        0.0, "calibration: largest share of the forget-class probes still classified as their class, deemed forgotten",
        min=0, max=1,
    )  # fmt: skip
    retain_tolerance: float = knob(
        0.05, "calibration: largest drop of held-out retained accuracy accepted (0.05 = 5 points)", min=0, max=1
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calibration_lr_max < self.calibration_lr_min:
            raise InvalidConfigError(
                f"calibration_lr_max ({self.calibration_lr_max:g}) must be at least calibration_lr_min "
                f"({self.calibration_lr_min:g})"
            )

    @classmethod
    def official(cls) -> UnsirConfig:
        """The official notebook's hyper-parameters (with its labelling bugs fixed): each
        noise batch is repeated 20 times in the impair set (its ``num_batches = 20``)."""
        return cls(
            dr_sub_per_class=1000,
            noise_batch=256,
            noise_steps=40,
            noise_lr=0.1,
            noise_lambda=0.1,
            noise_copies=20,
            batch_size=256,
            impair_lr=0.02,
            repair_lr=0.01,
            repair_epochs=1,
            rounds=1,
        )


def learn_noise(
    model: nn.Module,
    forget_classes: Sequence[int],
    image_shape: tuple[int, int, int],
    cfg: UnsirConfig,
    device: torch.device,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Error-maximising noise for every forget class, learned jointly in one batched pass.

    Returns ``(noise, labels)``: noise (K * noise_batch, C, H, W) in the model's normalised
    input space, labels (K * noise_batch,) holding each sample's own forget class. The model
    is used in eval mode with ``requires_grad`` off; its state is restored afterwards.
    """
    classes = torch.as_tensor(list(forget_classes), dtype=torch.int64)
    labels = classes.repeat_interleave(cfg.noise_batch).to(device)
    noise = torch.randn(len(labels), *image_shape, generator=generator).to(device).requires_grad_(True)
    optimizer = new_optimizer(torch.optim.Adam, [noise], lr=cfg.noise_lr)

    with frozen(model):  # BatchNorm uses, and keeps, the trained running statistics
        for step in range(cfg.noise_steps if cfg.noise == "error_max" else 0):  # "random": drawn, not optimised
            # Averaging over all K classes scales each class's loss by 1/K, which Adam ignores:
            # this is the same optimisation as K separate runs, in one forward pass.
            with autocast(device, cfg.precision):
                logits = model(noise).float()
            loss = -F.cross_entropy(logits, labels) + cfg.noise_lambda * noise.square().sum((1, 2, 3)).mean()
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"noise: the loss became {loss.item()} at step {step}; lower noise_lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if progress:
                progress("noise", step + 1, cfg.noise_steps)
    return noise.detach(), labels


def impair(
    model: nn.Module,
    noise: torch.Tensor,
    noise_labels: torch.Tensor,
    dr_x: torch.Tensor,
    dr_y: torch.Tensor,
    cfg: UnsirConfig,
    device: torch.device,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressFn | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> EpochStats:
    """One epoch (Adam, ``impair_lr``) over the noise (repeated ``noise_copies`` times) and
    Dr_sub shuffled together. ``dr_x`` is Dr_sub already normalised, on ``device`` (or, with
    frozen stages, both are the frozen stages' outputs and ``model`` the rest)."""
    x = torch.cat([noise.repeat(cfg.noise_copies, *[1] * (noise.ndim - 1)), dr_x])  # images or a ViT's tokens
    y = torch.cat([noise_labels.repeat(cfg.noise_copies), dr_y])
    optimizer = new_optimizer(torch.optim.Adam, model.parameters(), lr=cfg.impair_lr)
    # noise "none": the epoch is shuffled with the noise as usual (so that it draws the same random
    # numbers as the others), and the noise samples are then left out of every batch
    keep = None if cfg.noise != "none" else torch.arange(len(y)) >= len(noise) * cfg.noise_copies
    return _epoch(model, x, y, optimizer, cfg, device, generator, progress, "impair", keep=keep, scaler=scaler)


def repair(
    model: nn.Module,
    dr_x: torch.Tensor,
    dr_y: torch.Tensor,
    cfg: UnsirConfig,
    device: torch.device,
    *,
    generator: torch.Generator | None = None,
    progress: ProgressFn | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> list[EpochStats]:
    """``repair_epochs`` epochs (Adam, ``repair_lr``) over Dr_sub alone. ``dr_y``: labels, or
    soft targets (N, K) when the repair distils the original model's outputs."""
    optimizer = new_optimizer(torch.optim.Adam, model.parameters(), lr=cfg.repair_lr)
    return [
        _epoch(model, dr_x, dr_y, optimizer, cfg, device, generator, progress, "repair", scaler=scaler)
        for _ in range(cfg.repair_epochs)
    ]


def _epoch(model, x, y, optimizer, cfg, device, generator, progress, phase, keep=None, scaler=None) -> EpochStats:
    """One shuffled epoch over (x, y); ``keep`` (bool per sample): leave the others out of
    their batches (a batch left with fewer than two samples is skipped: BatchNorm needs two)."""
    order = list(batch_indices(len(y), cfg.batch_size, shuffle=True, generator=generator))
    if keep is not None:
        order = [i[keep[i]] for i in order if int(keep[i].sum()) > 1]
    tick = step_counter(progress, phase, len(order))
    return train_one_epoch(
        model,
        ((x[i], y[i]) for i in order),
        optimizer,
        device,
        on_step=tick,
        phase=phase,
        freeze_bn=cfg.freeze_bn,
        precision=cfg.precision,
        scaler=scaler,
    )


@torch.no_grad()
def _outputs(module: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """``module`` applied to ``x`` in eval mode, in batches (no gradients)."""
    with eval_mode(module):
        return torch.cat([module(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else x


def distilled_targets(
    model: nn.Module, dr_x: torch.Tensor, dr_y: torch.Tensor, forget: Sequence[int], cfg: UnsirConfig
) -> torch.Tensor:
    """Soft repair targets (N, K): ``1 - repair_distill`` of each label plus ``repair_distill``
    of ``model``'s softmax output on Dr_sub at ``distill_temperature``, with the forget classes'
    share removed and the rest renormalised (the original must not teach them back). Only
    Dr_sub (retained classes) is read: zero-glance holds."""
    probs = F.softmax(_outputs(model, dr_x).float() / cfg.distill_temperature, dim=1)
    probs[:, list(forget)] = 0
    probs = probs / probs.sum(1, keepdim=True).clamp_min(1e-12)
    labels = F.one_hot(dr_y, probs.shape[1]).float()
    return (1 - cfg.repair_distill) * labels + cfg.repair_distill * probs


def check_config(cfg: UnsirConfig, model_name: str, device: torch.device) -> None:
    """What can be known wrong with ``cfg`` before any work: a precision ``device`` cannot run,
    more frozen stages than ``model_name`` has (at least one stage must stay trainable)."""
    check_precision(cfg.precision, device)
    if cfg.frozen_stages:
        _check_frozen(cfg.frozen_stages, stage_count(model_name), model_name)


def _check_frozen(frozen: int, stages: int, model_name: str) -> None:
    if not 0 < frozen < stages:
        raise InvalidConfigError(f"frozen_stages must be between 1 and {stages - 1} for {model_name}, got {frozen}")


def split_stages(model: nn.Module, model_name: str, frozen: int) -> tuple[nn.Module, nn.Module]:
    """``model`` as (frozen prefix, trainable rest): its first ``frozen`` registered stages,
    switched to eval mode with gradients off, and the others. Both share the model's modules."""
    stages = model_spec(model_name).stages(model)
    _check_frozen(frozen, len(stages), model_name)
    prefix, rest = nn.Sequential(*stages[:frozen]), nn.Sequential(*stages[frozen:])
    prefix.eval().requires_grad_(False)
    return prefix, rest


@dataclass
class Prepared:
    """What impair and repair start from, made once per request (and shared by the trials of a
    calibration): the model's copy, the part of it they train, the noise and Dr_sub."""

    unlearned: nn.Module  # the caller's model, copied to the device
    trained: nn.Module  # what impair and repair train: ``unlearned``, or its stages after the frozen ones
    prefix: nn.Module | None  # the frozen stages (their outputs stand in for the inputs), or None
    noise: torch.Tensor  # (K * noise_batch, ...) in the trained part's input space
    noise_labels: torch.Tensor
    dr_x: torch.Tensor  # Dr_sub in the trained part's input space
    dr_y: torch.Tensor  # labels
    repair_y: torch.Tensor  # repair targets: the labels, or soft targets (distillation)
    grad_flags: list[bool]  # requires_grad of the caller's parameters, given back at the end

    def finish(self) -> nn.Module:
        """The unlearned model, its parameters as trainable as in the caller's model, in eval mode."""
        for p, flag in zip(self.unlearned.parameters(), self.grad_flags, strict=True):
            p.requires_grad_(flag)
        return self.unlearned.eval()


def check_zero_glance(forget_classes: Sequence[int], dr_sub: ImageTensors) -> list[int]:
    """The forget classes, sorted; refuses none, and a Dr_sub that holds one of them."""
    forget = sorted({int(c) for c in forget_classes})
    if not forget:
        raise InvalidClassesError("no forget class given: choose at least one class to forget")
    leaked = dr_sub.classes_present & set(forget)
    if leaked:
        raise ZeroGlanceViolation(
            f"Dr_sub holds samples of forget class(es) {sorted(leaked)}; it must hold retained classes only"
        )
    return forget


def prepare(
    model: nn.Module,
    forget: Sequence[int],
    dr_sub: ImageTensors,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    cfg: UnsirConfig,
    device: torch.device,
    generator: torch.Generator,
    *,
    progress: ProgressFn | None = None,
    model_name: str | None = None,
) -> Prepared:
    """Copy ``model`` to ``device``, learn the noise and move Dr_sub there (through the frozen
    stages when ``cfg.frozen_stages``). Call inside :func:`~unsir_core.data.forbid_classes`."""
    if cfg.frozen_stages and model_name is None:
        raise InvalidConfigError("frozen_stages needs the model's registered name (model_name)")
    # never mutate the caller's model; channels_last makes convolutions ~10% faster on CPU
    unlearned = copy.deepcopy(model).to(device, memory_format=torch.channels_last)
    grad_flags = [p.requires_grad for p in unlearned.parameters()]  # frozen stages give them back
    dr_x = normalize(dr_sub.images.to(device))  # (n, C, H, W), kept in memory for every epoch
    dr_y = dr_sub.labels.to(device)
    noise, noise_labels = learn_noise(
        unlearned, forget, dr_sub.image_shape, cfg, device, generator=generator, progress=progress
    )
    repair_y = distilled_targets(unlearned, dr_x, dr_y, forget, cfg) if cfg.repair_distill else dr_y
    prefix, trained = None, unlearned
    if cfg.frozen_stages:  # the frozen stages' outputs, computed once, stand in for the inputs
        prefix, trained = split_stages(unlearned, model_name, cfg.frozen_stages)
        noise, dr_x = _outputs(prefix, noise), _outputs(prefix, dr_x)
    return Prepared(unlearned, trained, prefix, noise, noise_labels, dr_x, dr_y, repair_y, grad_flags)


def impair_and_repair(
    trained: nn.Module,
    prep: Prepared,
    cfg: UnsirConfig,
    device: torch.device,
    generator: torch.Generator,
    *,
    phases: dict[str, float],
    history: list[dict],
    progress: ProgressFn | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """``cfg.rounds`` of impair and repair on ``trained`` (``prep.trained`` or a copy of it),
    adding their seconds to ``phases`` and their epochs to ``history``."""
    for r in range(cfg.rounds):
        t = time.perf_counter()
        stats = impair(
            trained, prep.noise, prep.noise_labels, prep.dr_x, prep.dr_y, cfg, device,
            generator=generator, progress=progress, scaler=scaler,
        )  # fmt: skip
        synchronize(device)
        phases["impair"] += time.perf_counter() - t
        history.append({"round": r + 1, "phase": "impair", "loss": stats.loss, "accuracy": stats.accuracy})

        t = time.perf_counter()
        for stats in repair(
            trained, prep.dr_x, prep.repair_y, cfg, device, generator=generator, progress=progress, scaler=scaler
        ):
            history.append({"round": r + 1, "phase": "repair", "loss": stats.loss, "accuracy": stats.accuracy})
        synchronize(device)
        phases["repair"] += time.perf_counter() - t


def unsir(
    model: nn.Module,
    forget_classes: Sequence[int],
    dr_sub: ImageTensors,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    cfg: UnsirConfig = UnsirConfig(),
    device: torch.device | str = "cpu",
    *,
    seed: int = 0,
    progress: ProgressFn | None = None,
    model_name: str | None = None,
) -> UnlearnResult:
    """Unlearn ``forget_classes`` from a copy of ``model`` with UNSIR, zero-glance.

    ``dr_sub`` holds retained-class training samples only (see
    :meth:`ImageTensors.sample_per_class`); ``normalize`` maps its uint8 images to the model's
    input space. No other data reaches this function, and it refuses a Dr_sub that holds a
    forget-class sample. ``model_name`` (the registered architecture) is needed to freeze
    stages (``cfg.frozen_stages``).
    """
    device = torch.device(device)
    check_precision(cfg.precision, device)
    forget = check_zero_glance(forget_classes, dr_sub)
    gen = torch.Generator().manual_seed(seed)
    scaler = grad_scaler(device, cfg.precision)  # fp16 only: one gradient scale for impair and repair
    phases = {"noise": 0.0, "impair": 0.0, "repair": 0.0}
    history: list[dict] = []
    with forbid_classes(forget):
        synchronize(device)
        start = time.perf_counter()
        prep = prepare(model, forget, dr_sub, normalize, cfg, device, gen, progress=progress, model_name=model_name)
        synchronize(device)
        phases["noise"] += time.perf_counter() - start
        impair_and_repair(
            prep.trained, prep, cfg, device, gen, phases=phases, history=history, progress=progress, scaler=scaler
        )
        unlearned = prep.finish()
        seconds = time.perf_counter() - start
    return UnlearnResult(unlearned, seconds, phases, history)

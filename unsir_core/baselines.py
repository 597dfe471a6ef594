"""Baseline unlearning methods, each registered with ``register_method``.

- ``retrain``: train a fresh model on the retained data with the data set's recipe (the gold
  standard; the experiment takes it from the checkpoint cache).
- ``finetune``: continue training the original on the retained data (catastrophic forgetting).
- ``neggrad``: gradient ascent on forget data with descent on retained data (NegGrad+,
  Kurmanji et al. 2023): loss = CE(retain) - ascent_weight * min(CE(forget), ascent_cap).
- ``fisher``: Fisher forgetting (Golatkar et al. 2020): Gaussian noise scaled by the inverse
  diagonal Fisher information of the retained data, and the forget classes' output rows reset;
  the noise scale is searched on held-out retained data unless given.
- ``amnesiac``: train on retained data plus forget data relabelled with random other classes
  (Graves et al. 2021).
- ``bad_teacher``: distil from the original (competent teacher) on retained data and from a
  randomly initialised model (incompetent teacher) on forget data (Chundawat et al. 2023).

Zero-glance: ``retrain``, ``finetune`` and ``fisher`` read retained data only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import Knobs, knob
from .data import ImageTensors, batches, paired_batches
from .methods import UnlearningTask, UnlearnResult, register_method
from .models import create_model
from .recipes import TrainConfig, default_recipe
from .runtime import new_optimizer, step_counter
from .train import accuracy, fit, predict, train_one_epoch

Batch = tuple[torch.Tensor, ...]  # (normalised x, target) or (x, target, per-sample weight)


def _result(model: nn.Module, start: float, phase: str) -> UnlearnResult:
    """The unlearned ``model`` with its wall time since ``start`` as the one phase ``phase``."""
    seconds = time.perf_counter() - start
    return UnlearnResult(model.eval(), seconds, {phase: seconds})


def _fit_retained(task: UnlearningTask, model: nn.Module, recipe: TrainConfig, start: float, phase: str, key: str):
    """Train ``model`` on the retained data with ``recipe`` (progress reported as ``phase``);
    the time, counted from ``start``, is the result's seconds and its phase ``key``."""
    fit(model, task.retain, task.normalize, recipe, task.device, seed=task.seed, progress=task.progress, phase=phase)
    return _result(model, start, key)


def _train_on_pairs(
    task: UnlearningTask,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: PairedConfig,
    phase: str,
    make_batch: Callable[..., Batch],
    start: float,
) -> UnlearnResult:
    """``cfg.epochs`` passes over the forget data, each batch half forget and half retained
    samples (:func:`~unsir_core.data.paired_batches`), turned into a training batch by
    ``make_batch(xf, yf, xr, yr, generator)``: the loop shared by the methods that read forget
    data. ``generator`` (seeded with the task's seed) also draws the batch order."""
    gen = torch.Generator().manual_seed(task.seed)
    half = max(1, cfg.batch_size // 2)
    tick = step_counter(task.progress, phase, cfg.epochs * math.ceil(len(task.forget) / half))
    for _ in range(cfg.epochs):
        loader = (make_batch(*pair, gen) for pair in paired_batches(task.forget, task.retain, half, gen))
        train_one_epoch(model, loader, optimizer, task.device, on_step=tick, phase=phase)
    return _result(model, start, phase)


# --- retrain -------------------------------------------------------------------------------


@register_method(
    "retrain",
    TrainConfig,
    reads_forget=False,
    summary="train from scratch on the retained classes",
    presets={"tuned": default_recipe},
    gold_standard=True,
)
def retrain(task: UnlearningTask, cfg: TrainConfig) -> UnlearnResult:
    start = time.perf_counter()
    torch.manual_seed(task.seed)
    model = create_model(task.model_name, task.num_classes, image_size=task.retain.image_shape[-1])
    return _fit_retained(task, model, cfg, start, phase="retrain", key="train")


# --- finetune ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FinetuneConfig(Knobs):
    epochs: int = knob(2, "passes over the retained training data", min=1)
    lr: float = knob(0.02, "SGD learning rate (momentum 0.9)", above=0)
    batch_size: int = knob(256, "samples per step", min=1)


@register_method("finetune", FinetuneConfig, reads_forget=False, summary="fine-tune on the retained data only")
def finetune(task: UnlearningTask, cfg: FinetuneConfig) -> UnlearnResult:
    start = time.perf_counter()
    recipe = TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer="sgd",
        lr=cfg.lr,
        weight_decay=5e-4,
        grad_clip_value=None,
        scheduler="none",
    )
    return _fit_retained(task, task.model_copy(), recipe, start, phase="finetune", key="finetune")


# --- methods that train on forget data mixed with retained data -----------------------------


@dataclass(frozen=True)
class PairedConfig(Knobs):
    epochs: int = knob(1, "passes over the forget data", min=1)
    lr: float = knob(1e-3, "learning rate", above=0)
    batch_size: int = knob(256, "samples per step, half forget and half retained", min=1)


@dataclass(frozen=True)
class NegGradConfig(PairedConfig):
    lr: float = knob(0.01, "SGD learning rate (momentum 0.9)", above=0)
    ascent_weight: float = knob(0.2, "weight of the gradient-ascent term on forget samples", min=0)
    ascent_cap: float = knob(10.0, "per-sample forget loss above which ascent stops (keeps it finite)", above=0)


@register_method("neggrad", NegGradConfig, reads_forget=True, summary="gradient ascent on forget, descent on retain")
def neggrad(task: UnlearningTask, cfg: NegGradConfig) -> UnlearnResult:
    start = time.perf_counter()
    model = task.model_copy()

    def batch(xf, yf, xr, yr, gen) -> Batch:
        with torch.no_grad():  # samples already past the cap get weight 0: no further ascent
            model.eval()
            capped = F.cross_entropy(model(task.normalize(xf.to(task.device))), yf.to(task.device), reduction="none")
            model.train()
        w_forget = torch.where(capped.cpu() < cfg.ascent_cap, -cfg.ascent_weight, 0.0)
        return task.normalize(torch.cat([xf, xr])), torch.cat([yf, yr]), torch.cat([w_forget, torch.ones(len(yr))])

    optimizer = new_optimizer(torch.optim.SGD, model.parameters(), lr=cfg.lr, momentum=0.9)
    return _train_on_pairs(task, model, optimizer, cfg, "neggrad", batch, start)


@dataclass(frozen=True)
class AmnesiacConfig(PairedConfig):
    lr: float = knob(1e-3, "Adam learning rate", above=0)
    batch_size: int = knob(256, "samples per step, half relabelled forget and half retained", min=1)


@register_method("amnesiac", AmnesiacConfig, reads_forget=True, summary="train on forget data with random wrong labels")
def amnesiac(task: UnlearningTask, cfg: AmnesiacConfig) -> UnlearnResult:
    start = time.perf_counter()
    model = task.model_copy()

    def batch(xf, yf, xr, yr, gen) -> Batch:
        # a random label among the other classes: shift by 1..K-1 modulo K
        wrong = (yf + torch.randint(1, task.num_classes, yf.shape, generator=gen)) % task.num_classes
        return task.normalize(torch.cat([xf, xr])), torch.cat([wrong, yr])

    optimizer = new_optimizer(torch.optim.Adam, model.parameters(), lr=cfg.lr)
    return _train_on_pairs(task, model, optimizer, cfg, "amnesiac", batch, start)


@dataclass(frozen=True)
class BadTeacherConfig(PairedConfig):
    lr: float = knob(1e-4, "Adam learning rate", above=0)
    temperature: float = knob(1.0, "softmax temperature of both teachers", above=0)


@register_method("bad_teacher", BadTeacherConfig, reads_forget=True, summary="distil from a good and a bad teacher")
def bad_teacher(task: UnlearningTask, cfg: BadTeacherConfig) -> UnlearnResult:
    start = time.perf_counter()
    student, good = task.model_copy(), task.model_copy().eval()
    torch.manual_seed(task.seed)
    bad = create_model(task.model_name, task.num_classes, image_size=task.retain.image_shape[-1]).to(task.device).eval()

    def batch(xf, yf, xr, yr, gen) -> Batch:
        xf, xr = task.normalize(xf.to(task.device)), task.normalize(xr.to(task.device))
        with torch.no_grad():
            soft = torch.cat([F.softmax(bad(xf) / cfg.temperature, 1), F.softmax(good(xr) / cfg.temperature, 1)])
        return torch.cat([xf, xr]), soft

    optimizer = new_optimizer(torch.optim.Adam, student.parameters(), lr=cfg.lr)
    return _train_on_pairs(task, student, optimizer, cfg, "bad_teacher", batch, start)


# --- Fisher forgetting ---------------------------------------------------------------------


# Noise scales the search tries, largest first: 1e-3 down to 1e-11 in half decades.
FISHER_ALPHAS = tuple(10 ** (-3 - k / 2) for k in range(17))


@dataclass(frozen=True)
class FisherConfig(Knobs):
    samples: int = knob(1000, "retained training samples used to estimate the diagonal Fisher", min=1)
    alpha: float = knob(
        0.0, "noise scale: variance = alpha / Fisher (clamped); 0: the largest that keeps held-out accuracy", min=0
    )
    tolerance: float = knob(
        0.02, "alpha search: held-out retained accuracy may fall this much below the noiseless model's", min=0, max=1
    )
    holdout: int = knob(1000, "alpha search: retained training samples, apart from the Fisher's, that judge", min=1)
    max_variance: float = knob(1e3, "upper clamp of 1 / Fisher before scaling", above=0)
    chunk: int = knob(32, "samples per vectorised per-sample-gradient pass (memory vs speed)", min=1)


def _diagonal_fisher(
    model: nn.Module, task: UnlearningTask, subset: ImageTensors, chunk: int
) -> dict[str, torch.Tensor]:
    """Mean over ``subset`` of each parameter's squared per-sample gradient (torch.func,
    ``model`` in eval mode so BatchNorm uses its running statistics)."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def sample_loss(p, x, y):
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(out, y.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    tick = step_counter(task.progress, "fisher", math.ceil(len(subset) / chunk))
    for x, y in batches(subset.images, subset.labels, chunk):
        for k, g in per_sample(params, task.normalize(x.to(task.device)), y.to(task.device)).items():
            total[k] += g.pow(2).sum(0)
        tick()
    return {k: t / len(subset) for k, t in total.items()}


@register_method(
    "fisher", FisherConfig, reads_forget=False, summary="noise scaled by the inverse Fisher of retained data"
)
def fisher(task: UnlearningTask, cfg: FisherConfig) -> UnlearnResult:
    """Diagonal empirical Fisher of ``samples`` retained samples, then ``w <- w + sqrt(alpha *
    min(1/F, max_variance)) * N(0, 1)`` per parameter, with the variance of weight matrices
    averaged per output unit and ten times larger for the classifier head and normalisation
    layers (as in Golatkar et al.'s code); the head rows of the forget classes are set to 0
    (plus small noise).

    The noise's effect depends on the Fisher's magnitude, so on the model and its recipe: with
    ``alpha`` 0 it is chosen by a search that reads retained data only. One noise draw is
    scaled by each alpha of :data:`FISHER_ALPHAS` (bisection, assuming accuracy falls as alpha
    grows); the largest whose accuracy on ``holdout`` other retained training samples is within
    ``tolerance`` of the model without noise (forget rows reset) wins. Each alpha tried is in
    the result's history."""
    start = time.perf_counter()
    model = task.model_copy().eval()
    gen = torch.Generator().manual_seed(task.seed)
    order = torch.randperm(len(task.retain), generator=gen)
    subset = task.retain.subset(order[: cfg.samples])
    fisher_diag = _diagonal_fisher(model, task, subset, cfg.chunk)
    estimated = time.perf_counter()

    forget = list(task.forget_classes)
    plan = []  # (parameter, its original value, variance per unit alpha, fixed variance, its draw)
    for name, p in model.named_parameters():
        var = (1.0 / (fisher_diag[name] + 1e-8)).clamp(max=cfg.max_variance)
        is_head = p.shape[0] == task.num_classes
        if is_head:
            var = var.clamp(max=1e2)
        if p.ndim > 1:
            var = var.flatten(1).mean(1).view(-1, *([1] * (p.ndim - 1))).expand_as(p).clone()
        mu, fixed = p.detach().clone(), torch.zeros_like(p)
        if is_head:
            mu[forget], var[forget], fixed[forget] = 0, 0, 1e-4  # not scaled by alpha
        if is_head or p.ndim == 1:
            var, fixed = var * 10, fixed * 10
        plan.append((p, mu, var, fixed, torch.randn(p.shape, generator=gen).to(p.device)))

    @torch.no_grad()
    def apply(alpha: float) -> None:
        for p, mu, var, fixed, draw in plan:
            p.copy_(mu + (alpha * var + fixed).sqrt() * draw)

    history = []
    alpha = cfg.alpha
    if alpha == 0:
        judge = task.retain.subset(order[cfg.samples : cfg.samples + cfg.holdout])
        judge = judge if len(judge) else subset  # a retained set too small to hold samples apart

        def held_out_accuracy(a: float) -> float:
            apply(a)
            acc = accuracy(predict(model, judge.images, task.normalize, task.device), judge.labels)
            history.append({"phase": "alpha_search", "alpha": a, "held_out_accuracy": acc})
            return acc

        floor = held_out_accuracy(0.0) - cfg.tolerance
        low, high = 0, len(FISHER_ALPHAS)  # FISHER_ALPHAS[high:] pass; find the first that does
        while low < high:
            mid = (low + high) // 2
            if held_out_accuracy(FISHER_ALPHAS[mid]) >= floor:
                high = mid
            else:
                low = mid + 1
        alpha = FISHER_ALPHAS[high] if high < len(FISHER_ALPHAS) else 0.0
        history.append({"phase": "alpha_search", "chosen_alpha": alpha, "floor": floor, "judged_on": len(judge)})
    apply(alpha)
    end = time.perf_counter()
    return UnlearnResult(model, end - start, {"fisher": estimated - start, "noise": end - estimated}, history)

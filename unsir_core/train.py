"""The one training loop, and prediction.

``train_one_epoch`` serves the original model, the retrained gold standard, UNSIR's impair and
repair steps, the baselines and the relearn-time metric; ``fit`` runs it for a whole recipe
(``recipes.py``). ``predict`` returns logits so that every accuracy (and later metric) is
computed from the same forward pass.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import distributed
from .data import ImageTensors, batches, num_batches
from .errors import NonFiniteLossError, UnsirError
from .recipes import TrainConfig
from .runtime import (
    ProgressFn,
    autocast,
    check_precision,
    deterministic_kernels,
    grad_scaler,
    new_optimizer,
    step_counter,
)

_OPTIMIZERS: dict[str, Callable[[Iterable[nn.Parameter], TrainConfig], torch.optim.Optimizer]] = {
    "adam": lambda p, c: new_optimizer(torch.optim.Adam, p, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda p, c: new_optimizer(torch.optim.AdamW, p, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda p, c: new_optimizer(
        torch.optim.SGD, p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, nesterov=True
    ),
}


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer not in _OPTIMIZERS:
        raise UnsirError(f"unknown optimizer {cfg.optimizer!r}; choose one of: {', '.join(_OPTIMIZERS)}")
    return _OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)


@dataclass
class EpochStats:
    loss: float  # mean loss per sample: cross-entropy, or the loss_fn given
    accuracy: float  # fraction of samples classified correctly during the epoch
    samples: int
    seconds: float


def batch_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of a batch. ``target``: class ids (B,) or soft targets (B, K), e.g. a
    teacher's probabilities for distillation; ``weight`` (B,): per-sample weights, e.g.
    negative ones for gradient ascent (NegGrad)."""
    if target.is_floating_point():
        per_sample = -(target * F.log_softmax(logits, dim=1)).sum(1)
    else:
        per_sample = F.cross_entropy(logits, target, reduction="none")
    return per_sample.mean() if weight is None else (per_sample * weight).mean()


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, ...]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    grad_clip_value: float | None = None,
    on_step: Callable[[], bool | None] | None = None,
    phase: str = "train",
    freeze_bn: bool = False,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    loss_fn: Callable[..., torch.Tensor] = batch_loss,
) -> EpochStats:
    """One pass of training over ``loader`` in train mode. Batches are ``(x, target)`` or
    ``(x, target, weight)`` with normalised inputs x; see :func:`batch_loss`. A method with
    another loss passes ``loss_fn(logits, target, *extra)``, called with the batch's further
    tensors (e.g. a teacher's logits for SCRUB), all on ``device``. ``precision``:
    fp32, or bf16 / fp16 autocast for the forward pass (the loss is taken in fp32; fp16 scales
    the gradients with ``scaler``: pass the same one to every epoch of a run, so that its scale,
    learned from overflows, carries over; a new one is made when none is given).

    Raises :class:`NonFiniteLossError` as soon as a loss is NaN or infinite; the caller decides
    what to keep (UNSIR works on a copy, so the original model is never touched).
    """
    model.train()
    if freeze_bn:  # normalise with the stored statistics and leave them unchanged
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    start = time.perf_counter()
    if scaler is None:
        scaler = grad_scaler(device, precision)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    for step, (x, y, *extra) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(x).float()  # a no-op in fp32
        loss = loss_fn(logits, y, *(e.to(device) for e in extra))
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"{phase}: the loss became {loss.item()} at step {step}; lower the learning rate. "
                "The original model and its checkpoint are untouched."
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # the scaler is a pass-through but for fp16
        if grad_clip_value is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_value_(model.parameters(), grad_clip_value)
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach() * y.shape[0]
        correct += (logits.argmax(1) == (y.argmax(1) if y.is_floating_point() else y)).sum()
        seen += y.shape[0]
        if on_step and on_step():  # a true return value stops the epoch early
            break
    seconds = time.perf_counter() - start
    return EpochStats(loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1), seen, seconds)


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int = 1000,
    progress: ProgressFn | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Logits (N, num_classes) on the CPU for uint8 ``images`` (N, C, H, W), in eval mode
    (``precision``: see :func:`train_one_epoch`; metrics are computed in fp32), with
    deterministic kernels on CUDA (:func:`~unsir_core.runtime.deterministic_kernels`)."""
    out = []
    total = -(-len(images) // batch_size)
    with eval_mode(model), deterministic_kernels(device):
        for step, start in enumerate(range(0, len(images), batch_size)):
            with autocast(device, precision):
                out.append(model(normalize(images[start : start + batch_size].to(device))).float().cpu())
            if progress:
                progress("evaluate", step + 1, total)
    return torch.cat(out) if out else torch.empty(0)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block (BatchNorm uses its running statistics, dropout is
    off), then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode with every weight's ``requires_grad`` off for the block, for
    optimising its inputs (UNSIR's noise, calibration's probes); then both as they were."""
    grad_flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        with eval_mode(model):
            yield model
    finally:
        for p, flag in zip(model.parameters(), grad_flags, strict=True):
            p.requires_grad_(flag)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Per-sample accuracy: the fraction of rows whose argmax equals the label (nan if empty)."""
    if len(labels) == 0:
        return math.nan
    return (logits.argmax(1) == labels).float().mean().item()


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of a 4-pixel zero-padded image and random horizontal flip, per sample.
    x: (B, C, H, W) float, on any device."""
    b, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 9, (b,), generator=generator).to(x.device)
    rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    out = padded.gather(2, rows.expand(b, x.shape[1], h, w + 8)).gather(3, cols.expand(b, x.shape[1], h, w))
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


@dataclass
class FitResult:
    seconds: float  # wall time of the whole training, evaluation of the held-out set included
    history: list[dict] = field(default_factory=list)  # per epoch: loss, accuracy, held-out loss, lr
    world_size: int = 1  # processes that trained it (torchrun; see distributed.py)
    shards: dict | None = None  # several processes: what each trained on in the first epoch


def fit(
    model: nn.Module,
    train: ImageTensors,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    device: torch.device,
    *,
    seed: int = 0,
    held_out: ImageTensors | None = None,
    progress: ProgressFn | None = None,
    phase: str = "train",
) -> FitResult:
    """Train ``model`` in place on ``train`` with recipe ``cfg``.

    ``held_out`` (the test split of the same classes, as in the official notebook) drives
    ReduceLROnPlateau; without it the plateau scheduler watches the training loss.

    Under torchrun (``distributed.world_size() > 1``) every process trains a DistributedDataParallel
    copy on its shard of each epoch's permutation, in batches of ``batch_size / world size``;
    the losses and accuracies in the history are those of all processes together.
    """
    start = time.perf_counter()
    check_precision(cfg.precision, device)
    gen = torch.Generator().manual_seed(seed)
    model.to(device, memory_format=torch.channels_last)  # ~10% faster convolutions on CPU
    optimizer = make_optimizer(model, cfg)
    world = distributed.world_size()
    batch_size = -(-cfg.batch_size // world)  # the same global batch as one process
    shard_len = -(-len(train) // world)
    steps_per_epoch = num_batches(shard_len, batch_size)
    scheduler = _make_scheduler(optimizer, cfg, steps_per_epoch)
    images, labels = train.images.to(device), train.labels.to(device)  # once, not per batch
    scaler = grad_scaler(device, cfg.precision)  # one for the whole run (fp16 only)
    total_steps = cfg.epochs * steps_per_epoch
    count = step_counter(progress, phase, total_steps)

    def tick() -> None:
        # the lr for the next step; after the last one there is none (OneCycleLR would start over)
        if cfg.scheduler in PER_STEP_SCHEDULERS and scheduler.last_epoch < total_steps - 1:
            scheduler.step()
        count()

    # several processes: each augments its own samples with its own draws, and the shared
    # generator (the permutation) stays in step in all of them
    aug_gen = gen if world == 1 else torch.Generator().manual_seed(seed * 1009 + distributed.rank() + 1)

    def transform(x: torch.Tensor) -> torch.Tensor:
        x = normalize(x)
        return augment_batch(x, aug_gen) if cfg.augment else x

    trained = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    history, shards = [], None
    for epoch in range(cfg.epochs):
        if world == 1:
            loader = batches(images, labels, batch_size, shuffle=True, generator=gen, transform=transform)
        else:
            mine = distributed.shard(len(train), gen)
            if shards is None:
                shards = distributed.shard_check(mine, len(train), device)
            loader = batches(images[mine.to(device)], labels[mine.to(device)], batch_size, transform=transform)
        stats = train_one_epoch(
            trained,
            loader,
            optimizer,
            device,
            grad_clip_value=cfg.grad_clip_value,
            on_step=tick,
            phase=phase,
            precision=cfg.precision,
            scaler=scaler,
        )
        if world > 1:  # the epoch's figures over all processes
            loss_sum, correct, seen = distributed.all_sum(
                [stats.loss * stats.samples, stats.accuracy * stats.samples, stats.samples], device
            )
            stats = EpochStats(loss_sum / seen, correct / seen, int(seen), stats.seconds)
        entry = {
            "epoch": epoch + 1,
            "loss": stats.loss,
            "accuracy": stats.accuracy,
            "lr": optimizer.param_groups[0]["lr"],
        }
        if cfg.scheduler == "plateau":
            if held_out is not None:
                logits = predict(model, held_out.images, normalize, device)
                loss, acc = F.cross_entropy(logits, held_out.labels).item(), accuracy(logits, held_out.labels)
                # several processes: their BatchNorm statistics differ a little; one mean, so
                # that every process takes the same scheduler decision
                loss, acc = (v / world for v in distributed.all_sum([loss, acc], device))
                entry["held_out_loss"], entry["held_out_accuracy"] = loss, acc
            scheduler.step(entry.get("held_out_loss", stats.loss))
        elif scheduler is not None and cfg.scheduler not in PER_STEP_SCHEDULERS:
            scheduler.step()
        history.append(entry)
    model.eval()
    return FitResult(time.perf_counter() - start, history, world, shards)


# Schedulers that move the learning rate after every batch rather than after every epoch.
PER_STEP_SCHEDULERS = ("onecycle",)


def _make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    if cfg.scheduler == "onecycle":
        # Warm up for the first 25 % of the steps to lr, then anneal (cosine) to lr / 1e4: a
        # few epochs at a high learning rate train as far as many at a careful one.
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=max(cfg.epochs * steps_per_epoch, 1), pct_start=0.25
        )
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
    if cfg.scheduler == "none":
        return None
    raise UnsirError(f"unknown scheduler {cfg.scheduler!r}; choose plateau, cosine, onecycle or none")

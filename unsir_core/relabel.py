"""Random labels (RL) and SalUn: fine-tuning in which the forget samples carry random labels.

- ``random_labels``: every epoch, one pass over the forget samples, each batch labelled with
  classes drawn uniformly from all classes (the true one included), then one pass over the
  retained samples with their own labels (Golatkar et al. 2020's baseline in the setting of
  Fan et al. 2024; the official SalUn code's ``unlearn/RL.py``, CIFAR-10 branch).
- ``salun``: saliency unlearning (Fan et al., *SalUn: Empowering Machine Unlearning via
  Gradient-based Weight Saliency*, ICLR 2024): the same training, but only the weights most
  salient for forgetting move. Saliency is the magnitude of the gradient of the forget loss,
  summed over forget batches with the model in eval mode (``generate_mask.py``); the top
  ``mask_ratio`` of all weights, ranked together, train, and every other weight is put back to
  its original value after each step, with its momentum cleared (``_restore_masked_params``).

Defaults are the official code's for CIFAR-10 ResNet18 (OPTML-Group/Unlearn-Saliency,
``Classification/``): SGD with momentum 0.9 and weight decay 5e-4, batches of 256, 10 epochs;
learning rate 0.01 for RL (``arg_parser.py``'s default) and 0.013 for SalUn with a mask of
the top half of the weights (``mask/with_0.5.pt``): the README's one ResNet18 command, which
forgets 10 % of random samples, not a class; the code publishes no class-wise values.
As with the other baselines here the images are not augmented. Both read forget-class samples:
neither is zero-glance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .config import Knobs, knob
from .data import ImageTensors, Normalize, batches, num_batches
from .gradients import batch_gradients
from .methods import UnlearningTask, UnlearnResult, register_method
from .runtime import new_optimizer, step_counter
from .train import train_one_epoch

Mask = dict[str, torch.Tensor]  # parameter name -> 1 where the weight trains, 0 where it stays


@dataclass(frozen=True)
class RandomLabelsConfig(Knobs):
    epochs: int = knob(10, "rounds, each a pass over the relabelled forget data then the retained data", min=1)
    lr: float = knob(0.01, "SGD learning rate (momentum 0.9, weight decay 5e-4)", above=0)
    batch_size: int = knob(256, "samples per step", min=1)


@dataclass(frozen=True)
class SalunConfig(RandomLabelsConfig):
    lr: float = knob(0.013, "SGD learning rate (momentum 0.9, weight decay 5e-4)", above=0)
    mask_ratio: float = knob(
        0.5, "fraction of all weights, the most salient for forgetting, that train", above=0, max=1
    )


def saliency_mask(
    model: nn.Module, forget: ImageTensors, normalize: Normalize, device: torch.device, ratio: float, batch_size: int
) -> Mask:
    """1 for the ``ratio`` fraction of all weights with the largest ``|sum over forget batches
    of the gradient of the batch's mean cross-entropy|`` (model in eval mode, left unchanged;
    ties at the threshold broken by position), 0 elsewhere."""
    total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for grads in batch_gradients(model, forget, normalize, device, batch_size):
        for name, g in grads.items():
            total[name] += g
    flat = torch.cat([t.abs().flatten() for t in total.values()])
    chosen = torch.zeros_like(flat)
    chosen[torch.topk(flat, round(ratio * flat.numel()), sorted=False).indices] = 1
    return {
        name: part.view_as(total[name])
        for name, part in zip(total, chosen.split([t.numel() for t in total.values()]), strict=True)
    }


def _passes(task: UnlearningTask, cfg: RandomLabelsConfig, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch's batches: the forget samples (shuffled) with labels drawn uniformly from all
    classes, then the retained samples (shuffled) with theirs."""
    for x, _ in batches(task.forget.images, task.forget.labels, cfg.batch_size, shuffle=True, generator=gen):
        yield task.normalize(x), torch.randint(0, task.num_classes, (len(x),), generator=gen)
    yield from batches(
        task.retain.images, task.retain.labels, cfg.batch_size, shuffle=True, generator=gen, transform=task.normalize
    )


def _relabel(task: UnlearningTask, cfg: RandomLabelsConfig, phase: str, mask_ratio: float | None) -> UnlearnResult:
    """Random-label training on a copy of the model; with ``mask_ratio``, only the weights of
    :func:`saliency_mask` move (SalUn). The history's accuracy is against the labels trained
    on: the random ones of the forget batches and the retained samples' own."""
    start = time.perf_counter()
    model = task.model_copy()
    frozen = {}  # parameter -> (1 where it must stay, its original value)
    if mask_ratio is not None:
        mask = saliency_mask(model, task.forget, task.normalize, task.device, mask_ratio, cfg.batch_size)
        frozen = {p: (1 - mask[n], p.detach().clone()) for n, p in model.named_parameters()}
    masked = time.perf_counter()
    optimizer = new_optimizer(torch.optim.SGD, model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
    steps = num_batches(len(task.forget), cfg.batch_size) + num_batches(len(task.retain), cfg.batch_size)
    tick = step_counter(task.progress, phase, cfg.epochs * steps)

    def after_step() -> None:
        with torch.no_grad():
            for p, (keep, original) in frozen.items():
                p.mul_(1 - keep).add_(original * keep)
                buffer = optimizer.state.get(p, {}).get("momentum_buffer")
                if buffer is not None:
                    buffer.mul_(1 - keep)
        tick()

    gen = torch.Generator().manual_seed(task.seed)
    history = []
    for epoch in range(cfg.epochs):
        stats = train_one_epoch(model, _passes(task, cfg, gen), optimizer, task.device, on_step=after_step, phase=phase)
        history.append({"phase": phase, "epoch": epoch + 1, "loss": stats.loss, "accuracy": stats.accuracy})
    end = time.perf_counter()
    phases = {"saliency": masked - start, phase: end - masked} if mask_ratio is not None else {phase: end - masked}
    return UnlearnResult(model.eval(), end - start, phases, history)


@register_method(
    "random_labels",
    RandomLabelsConfig,
    reads_forget=True,
    summary="fine-tune on forget data with random labels, then on retained data, each epoch",
)
def random_labels(task: UnlearningTask, cfg: RandomLabelsConfig) -> UnlearnResult:
    """RL on a copy of the model: ``cfg.epochs`` x (relabelled forget pass, retained pass)."""
    return _relabel(task, cfg, "random_labels", None)


@register_method(
    "salun",
    SalunConfig,
    reads_forget=True,
    summary="random labels on the weights most salient for the forget data only (SalUn)",
)
def salun(task: UnlearningTask, cfg: SalunConfig) -> UnlearnResult:
    """SalUn on a copy of the model: the saliency mask (phase ``saliency``), then RL on it."""
    return _relabel(task, cfg, "salun", cfg.mask_ratio)

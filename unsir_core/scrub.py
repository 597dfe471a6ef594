"""SCRUB (Kurmanji, Triantafillou, Hayes and Triantafillou, *Towards Unbounded Machine
Unlearning*, NeurIPS 2023): a student, initialised as the original model (the teacher), is
trained in alternating max and min passes:

- max pass, over the forget samples: move the student's outputs *away* from the teacher's,
  loss ``-KL(teacher || student)`` at temperature ``T``;
- min pass, over the retained samples: stay close to the teacher and to the labels, loss
  ``ce_weight * CE(student, label) + kl_weight * KL(teacher || student)``.

Each round is a max pass (the first ``max_rounds`` rounds only) then a min pass. KL is taken
between the softmaxes at temperature ``T`` and multiplied by ``T^2`` (Hinton's distillation
loss, the code's ``DistillKL``). Teacher in eval mode, student in train mode.

Defaults are the official code's class-forgetting settings on CIFAR-10 (meghdadk/SCRUB,
``large_scale_unlearning.ipynb``, whose model there is All-CNN; no ResNet18 values are
published): 3 rounds, max passes in the first 2 (``msteps``), SGD lr 5e-4 with momentum 0.9
and weight decay 5e-4, T = 4, CE weight 0.99 (``gamma``), KL weight 0.001 (``alpha``), and the
batch sizes its loaders use, 256 retained and 512 forget samples (its ``sgda_batch_size`` 128
and ``del_batch_size`` 32 are set but never used). SCRUB reads forget-class samples: it is not
zero-glance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import Knobs, knob
from .data import ImageTensors, Normalize, batches, num_batches
from .methods import UnlearningTask, UnlearnResult, register_method
from .runtime import new_optimizer, step_counter
from .train import train_one_epoch


@dataclass(frozen=True)
class ScrubConfig(Knobs):
    rounds: int = knob(3, "rounds, each a max pass over forget data (the first max_rounds) then a min pass", min=1)
    max_rounds: int = knob(2, "rounds that start with a max pass over the forget data", min=0)
    lr: float = knob(5e-4, "SGD learning rate (momentum 0.9, weight decay 5e-4)", above=0)
    retain_batch: int = knob(256, "retained samples per min step", min=1)
    forget_batch: int = knob(512, "forget samples per max step", min=1)
    temperature: float = knob(4.0, "softmax temperature of the KL terms", above=0)
    ce_weight: float = knob(0.99, "weight of the cross-entropy on retained samples (gamma)", min=0)
    kl_weight: float = knob(0.001, "weight of the KL to the teacher on retained samples (alpha)", min=0)


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``KL(softmax(teacher / T) || softmax(student / T)) * T^2``, summed over classes and
    averaged over the batch."""
    log_p = F.log_softmax(student / temperature, dim=1)
    q = F.softmax(teacher / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2


def _with_teacher(
    teacher: nn.Module, data: ImageTensors, normalize: Normalize, batch_size: int, device: torch.device, gen
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Shuffled batches ``(x, label, teacher logits)`` of ``data``."""
    for x, y in batches(data.images, data.labels, batch_size, shuffle=True, generator=gen, transform=normalize):
        x = x.to(device)
        with torch.no_grad():
            target = teacher(x)
        yield x, y, target  # outside no_grad: the student's step needs its graph


@register_method(
    "scrub",
    ScrubConfig,
    reads_forget=True,
    summary="student moves away from the teacher on forget data, stays close on retained data (SCRUB)",
)
def scrub(task: UnlearningTask, cfg: ScrubConfig) -> UnlearnResult:
    """SCRUB on a copy of the model (the student); the phases are the seconds of all max and
    all min passes, the history each pass's mean loss and accuracy against the labels."""
    start = time.perf_counter()
    teacher = task.model_copy().eval()
    student = task.model_copy()
    optimizer = new_optimizer(torch.optim.SGD, student.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
    max_rounds = min(cfg.max_rounds, cfg.rounds)
    steps = max_rounds * num_batches(len(task.forget), cfg.forget_batch) + cfg.rounds * num_batches(
        len(task.retain), cfg.retain_batch
    )
    tick = step_counter(task.progress, "scrub", steps)
    T = cfg.temperature

    def away(logits, _label, teacher_logits):
        return -distill_kl(logits, teacher_logits, T)

    def close(logits, label, teacher_logits):
        return cfg.ce_weight * F.cross_entropy(logits, label) + cfg.kl_weight * distill_kl(logits, teacher_logits, T)

    gen = torch.Generator().manual_seed(task.seed)
    phases = {"max": 0.0, "min": 0.0}
    history = []
    for r in range(cfg.rounds):
        passes = [("max", task.forget, cfg.forget_batch, away)] if r < max_rounds else []
        passes.append(("min", task.retain, cfg.retain_batch, close))
        for name, data, batch_size, loss in passes:
            begin = time.perf_counter()
            loader = _with_teacher(teacher, data, task.normalize, batch_size, task.device, gen)
            stats = train_one_epoch(student, loader, optimizer, task.device, on_step=tick, phase="scrub", loss_fn=loss)
            phases[name] += time.perf_counter() - begin
            history.append({"phase": f"scrub_{name}", "round": r + 1, "loss": stats.loss, "accuracy": stats.accuracy})
    return UnlearnResult(student.eval(), time.perf_counter() - start, phases, history)

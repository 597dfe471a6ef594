"""Gradients of the cross-entropy over a data set's mini-batches, for the methods that weigh
parameters by them: SSD's importance (the mean squared batch gradient, ``ssd``) and SalUn's
weight saliency (the summed batch gradient, ``relabel``). Fisher forgetting's per-sample
gradients are another quantity (``baselines``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageTensors, Normalize, batches


def batch_gradients(
    model: nn.Module,
    data: ImageTensors,
    normalize: Normalize,
    device: torch.device,
    batch_size: int,
    tick: Callable[[], None] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Per mini-batch of ``data``, in order, the gradient of the batch's mean cross-entropy with
    respect to each trainable parameter of ``model``, by name (those the loss does not reach are
    left out). ``model`` is in eval mode from the first batch to the end of the loop (so
    BatchNorm uses its running statistics, also in the caller's loop body); its mode is restored
    when the loop ends or the generator is closed. Neither its weights nor their ``.grad`` are
    touched."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    was_training = model.training
    model.eval()
    try:
        for x, y in batches(data.images, data.labels, batch_size):
            loss = F.cross_entropy(model(normalize(x.to(device))), y.to(device))
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            yield {name: g for name, g in zip(params, grads, strict=True) if g is not None}
            if tick:
                tick()
    finally:
        model.train(was_training)

"""``unsir_notebook``: UNSIR as the official notebook runs it, its defects included, for the
benchmark to show what the fixes in ``unsir_core.unsir`` change. Importing this module
registers the method; it is not part of the library (nobody should unlearn with it).

The notebook's defects (../shared/UNSIR.md, "Known defects"), reproduced here:

1. the noise is optimised with the model in train mode, so every noise forward pass updates
   (overwrites) the BatchNorm running statistics of the model that is then impaired;
2. only 3 distinct noise images per class reach the impair set (its loop runs over
   ``batch[0].size(0)``, the channel count, not the batch size), each repeated
   ``noise_copies`` (20) times;
3. every noise sample in the impair set is labelled class 0, whatever class it was learned for.

(The notebook also averages accuracy per batch instead of per sample; the benchmark measures
per sample for every method, so that one is not reproduced.) Everything else is the library's:
Dr_sub sampling, impair and repair epochs, the zero-glance guard.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from unsir_core.data import retained_classes
from unsir_core.methods import UnlearningTask, UnlearnResult, register_method
from unsir_core.unsir import UnsirConfig, impair, repair

NOISE_IMAGES_KEPT = 3  # the channel count: what the notebook's loop bound really was


@register_method(
    "unsir_notebook",
    UnsirConfig,
    reads_forget=False,
    presets={"tuned": lambda dataset, model, recipes: UnsirConfig.official()},
    summary="UNSIR with the official notebook's defects (BatchNorm in train mode for the noise, 3 noise images "
    "per class, every noise labelled 0): for comparison only",
)
def unsir_notebook(task: UnlearningTask, cfg: UnsirConfig) -> UnlearnResult:
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(task.seed)
    model = copy.deepcopy(task.model).to(task.device)
    dr = task.retain.sample_per_class(
        retained_classes(task.forget_classes, task.num_classes), cfg.dr_sub_per_class, seed=task.seed
    )
    dr_x, dr_y = task.normalize(dr.images.to(task.device)), dr.labels.to(task.device)

    kept = []
    for c in task.forget_classes:  # one noise batch per class, optimised one class at a time
        noise = torch.randn(cfg.noise_batch, *dr.image_shape, generator=gen).to(task.device).requires_grad_(True)
        optimizer = torch.optim.Adam([noise], lr=cfg.noise_lr)
        target = torch.full((cfg.noise_batch,), c, device=task.device)
        model.train()  # defect 1: BatchNorm running statistics follow the noise
        for _ in range(cfg.noise_steps):
            loss = -F.cross_entropy(model(noise), target) + cfg.noise_lambda * noise.square().sum((1, 2, 3)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        kept.append(noise.detach()[:NOISE_IMAGES_KEPT])  # defect 2
    model.zero_grad(set_to_none=True)
    noise = torch.cat(kept)
    labels = torch.zeros(len(noise), dtype=torch.int64, device=task.device)  # defect 3
    noise_seconds = time.perf_counter() - start

    t = time.perf_counter()
    impair(model, noise, labels, dr_x, dr_y, cfg, task.device, generator=gen)
    impair_seconds = time.perf_counter() - t
    t = time.perf_counter()
    repair(model, dr_x, dr_y, cfg, task.device, generator=gen)
    phases = {"noise": noise_seconds, "impair": impair_seconds, "repair": time.perf_counter() - t}
    return UnlearnResult(model.eval(), time.perf_counter() - start, phases)

"""The batch gradients SSD and SalUn share: per batch, by name, in eval mode, nothing left behind."""

import torch
import torch.nn.functional as F
from torch import nn

from unsir_core.data import ImageTensors
from unsir_core.gradients import batch_gradients

CPU = torch.device("cpu")


def test_batch_gradients_are_each_batchs_in_eval_mode_and_touch_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4), nn.Linear(4, 3), nn.Linear(3, 3))
    model[4].requires_grad_(False)  # frozen: left out
    model.train()
    with torch.no_grad():
        model[2].running_mean.fill_(0.5)  # eval mode must use these, not the batch's statistics
    images = torch.randint(0, 256, (6, 3, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    normalize = lambda x: x.float() / 255  # noqa: E731
    ticks = []
    got = list(batch_gradients(model, ImageTensors(images, labels), normalize, CPU, 2, tick=lambda: ticks.append(1)))
    assert len(got) == len(ticks) == 3 and model.training  # batches of 2; the mode restored
    assert all(p.grad is None for p in model.parameters())
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    model.eval()
    for part, grads in zip((slice(0, 2), slice(2, 4), slice(4, 6)), got, strict=True):
        assert list(grads) == trainable
        expected = torch.autograd.grad(
            F.cross_entropy(model(normalize(images[part])), labels[part]),
            [p for p in model.parameters() if p.requires_grad],
        )
        for name, g in zip(trainable, expected, strict=True):
            torch.testing.assert_close(grads[name], g)

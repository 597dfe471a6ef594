"""Random labels and SalUn: the saliency mask on a hand-checked case, the batches of an
epoch, and that SalUn moves only the weights of its mask."""

import torch
import torch.nn.functional as F
from torch import nn

from unsir_core.data import ImageTensors
from unsir_core.methods import UnlearningTask, method_config, unlearn
from unsir_core.relabel import RandomLabelsConfig, SalunConfig, _passes, saliency_mask

CPU = torch.device("cpu")


def normalize(x):
    return x.float() / 255


def test_defaults_are_the_official_codes():
    assert RandomLabelsConfig() == RandomLabelsConfig(epochs=10, lr=0.01, batch_size=256)
    assert SalunConfig() == SalunConfig(epochs=10, lr=0.013, batch_size=256, mask_ratio=0.5)
    assert method_config("salun", "cifar10", "resnet18") == SalunConfig()


def test_the_mask_keeps_the_weights_with_the_largest_summed_forget_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.BatchNorm1d(3))
    model[2].running_mean.fill_(0.3)  # in eval mode these, not the batch's statistics, normalise
    model[2].running_var.fill_(4.0)
    images = torch.randint(0, 256, (5, 3, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1])
    # by hand: the gradients of the batches [0:2] and [2:5] (a last single sample joins the
    # batch before it) summed, then ranked by magnitude
    summed = [torch.zeros_like(p) for p in model.parameters()]
    model.eval()
    for part in (slice(0, 2), slice(2, 5)):
        grads = torch.autograd.grad(
            F.cross_entropy(model(normalize(images[part])), labels[part]), list(model.parameters())
        )
        summed = [s + g for s, g in zip(summed, grads, strict=True)]
    flat = torch.cat([s.abs().flatten() for s in summed])
    k = round(0.25 * flat.numel())  # 11 of the 45 weights
    threshold = flat.sort(descending=True).values[k - 1]
    model.train()  # the mask is taken in eval mode whatever mode the model is in
    mask = saliency_mask(model, ImageTensors(images, labels), normalize, CPU, ratio=0.25, batch_size=2)
    assert model.training
    got = torch.cat([m.flatten() for m in mask.values()])
    assert int(got.sum()) == k
    assert torch.equal(got.bool(), flat >= threshold)  # no ties here
    assert all(p.grad is None for p in model.parameters())  # it leaves no gradients behind
    assert all(
        int(m.sum()) == m.numel()
        for m in saliency_mask(model, ImageTensors(images, labels), normalize, CPU, 1.0, 2).values()
    )


def test_an_epoch_relabels_the_forget_batches_at_random_then_passes_over_the_retained_data():
    forget = ImageTensors(torch.zeros(300, 1, 2, 2, dtype=torch.uint8), torch.full((300,), 3))
    retain = ImageTensors(torch.ones(50, 1, 2, 2, dtype=torch.uint8), torch.arange(50) % 3)
    task = UnlearningTask(nn.Identity(), "x", (3,), 4, retain, forget, normalize, CPU)
    out = list(_passes(task, RandomLabelsConfig(batch_size=100), torch.Generator().manual_seed(0)))
    assert len(out) == 3 + 1
    forget_labels = torch.cat([y for _, y in out[:3]])
    assert set(forget_labels.tolist()) == {0, 1, 2, 3}  # drawn from every class, the true one included
    assert all(x.max() == 0 for x, _ in out[:3]) and out[3][0].min() == 1 / 255  # forget first, normalised
    assert sorted(out[3][1].tolist()) == sorted(retain.labels.tolist())  # the retained samples keep their labels


def test_salun_moves_only_the_weights_of_its_mask(digits, trained_digits_model):
    cfg = SalunConfig(epochs=1, mask_ratio=0.1)
    forget = digits.train.select([3])
    mask = saliency_mask(trained_digits_model, forget, digits.normalize, CPU, cfg.mask_ratio, cfg.batch_size)
    result = unlearn("salun", trained_digits_model, "resnet18", digits, (3,), CPU, cfg, seed=0)
    assert set(result.phases) == {"saliency", "salun"}
    after = dict(result.model.named_parameters())
    moved = kept = 0
    for name, before in trained_digits_model.named_parameters():
        inside = mask[name].bool()
        assert torch.equal(after[name][~inside], before[~inside]), name  # exactly where they were
        moved += int((after[name][inside] != before[inside]).sum())
        kept += int(inside.sum())
    assert moved > 0.5 * kept  # and the masked ones did train

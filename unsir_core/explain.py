"""GradCAM heatmaps (via the grad-cam package) for every registered architecture.

At CIFAR's 32x32 input the last stage of an ImageNet-style network is 1x1, where GradCAM can
only paint a uniform square. So each architecture lists candidate layers from deep to shallow
and :func:`target_layer` picks the deepest one whose feature map is at least
``min_side`` x ``min_side`` at the model's input size. The ViT's token sequence is reshaped to
a (B, C, h, w) grid, dropping the class token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .errors import UnknownNameError

ReshapeFn = Callable[[torch.Tensor], torch.Tensor]

# Candidate target layers per architecture, deepest first.
CANDIDATES: dict[str, Callable[[nn.Module], list[nn.Module]]] = {
    "resnet18": lambda m: [m.layer4[-1], m.layer3[-1], m.layer2[-1], m.layer1[-1]],
    "mobilenetv2": lambda m: [m.features[i] for i in range(len(m.features) - 1, 0, -1)],
    "allcnn": lambda m: [
        m.features[i] for i in range(len(m.features) - 1, -1, -1) if not isinstance(m.features[i], nn.Dropout)
    ],
    "vit": lambda m: [m.encoder.layers[-1].ln_1],
}


def vit_reshape(tokens: torch.Tensor) -> torch.Tensor:
    """(B, 1 + h*w, C) ViT tokens -> (B, C, h, w), dropping the class token."""
    grid = tokens[:, 1:, :]
    side = int(round(grid.shape[1] ** 0.5))
    return grid.reshape(grid.shape[0], side, side, grid.shape[2]).permute(0, 3, 1, 2)


RESHAPES: dict[str, ReshapeFn] = {"vit": vit_reshape}


def target_layer(model_name: str, model: nn.Module, image_shape: Sequence[int], min_side: int = 4) -> nn.Module:
    """The deepest candidate layer of ``model`` whose output is at least ``min_side`` wide."""
    if model_name not in CANDIDATES:
        raise UnknownNameError(f"no GradCAM target layers known for model {model_name!r}")
    candidates = CANDIDATES[model_name](model)
    if model_name in RESHAPES:
        return candidates[0]
    sides: dict[int, int] = {}
    hooks = [
        layer.register_forward_hook(lambda mod, inp, out, i=i: sides.__setitem__(i, out.shape[-1]))
        for i, layer in enumerate(candidates)
    ]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *image_shape, device=next(model.parameters()).device))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    for i, layer in enumerate(candidates):
        if sides.get(i, 0) >= min_side:
            return layer
    return candidates[-1]


def gradcam(
    model: nn.Module,
    model_name: str,
    images: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    targets: Sequence[int] | None = None,
) -> np.ndarray:
    """GradCAM heatmaps, float32 (N, H, W) in [0, 1], for uint8 ``images`` (N, C, H, W).

    ``targets``: the class whose evidence each heatmap shows (e.g. the true label, to see
    where a model still looks for a forgotten class); None: each image's predicted class.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = model.to(device).eval()
    layer = target_layer(model_name, model, images.shape[1:])
    x = normalize(images.to(device))
    cam_targets = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
    with GradCAM(model=model, target_layers=[layer], reshape_transform=RESHAPES.get(model_name)) as cam:
        heat = cam(input_tensor=x, targets=cam_targets)
    return heat.astype(np.float32)

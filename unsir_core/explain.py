"""GradCAM heatmaps (via the grad-cam package) for every registered architecture.

At CIFAR's 32x32 input the last stage of an ImageNet-style network is 1x1, where GradCAM can
only paint a uniform square. So each architecture registers candidate layers from deep to
shallow with itself (``models.register_model(..., cam_layers=...)``) and :func:`target_layer`
picks the deepest one whose feature map is at least ``min_side`` x ``min_side`` at the model's
input size. A transformer registers how its tokens become a (B, C, h, w) grid instead
(``cam_reshape``) and uses its one candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .models import model_spec
from .train import eval_mode


def target_layer(model_name: str, model: nn.Module, image_shape: Sequence[int], min_side: int = 4) -> nn.Module:
    """The deepest candidate layer of ``model`` whose output is at least ``min_side`` wide."""
    spec = model_spec(model_name)
    candidates = spec.cam_layers(model)
    if spec.cam_reshape is not None:
        return candidates[0]
    sides: dict[int, int] = {}
    hooks = [
        layer.register_forward_hook(lambda mod, inp, out, i=i: sides.__setitem__(i, out.shape[-1]))
        for i, layer in enumerate(candidates)
    ]
    try:
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(1, *image_shape, device=next(model.parameters()).device))
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
    with GradCAM(model=model, target_layers=[layer], reshape_transform=model_spec(model_name).cam_reshape) as cam:
        heat = cam(input_tensor=x, targets=cam_targets)
    return heat.astype(np.float32)

import numpy as np
import pytest
import torch

from unsir_core.explain import gradcam, target_layer
from unsir_core.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_gradcam_gives_one_heatmap_per_image_for_every_model(name):
    torch.manual_seed(0)
    model = create_model(name, 10)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    heat = gradcam(model, name, images, lambda x: x.float() / 255 - 0.5, torch.device("cpu"), targets=[1, 2, 3])
    assert heat.shape == (3, 32, 32) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1 + 1e-6


def test_resnet_target_layer_keeps_spatial_detail_at_32px():
    model = create_model("resnet18", 10)
    assert target_layer("resnet18", model, (3, 32, 32)) is model.layer2[-1]  # 4x4; layer4 would be 1x1
    assert target_layer("resnet18", model, (3, 128, 128)) is model.layer4[-1]

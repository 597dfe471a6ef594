"""The feature-level metrics pinned on cases whose answer is known."""

import math

import pytest
import torch

from unsir_core.models import create_model, list_models
from unsir_core.representation import (
    block_grams,
    cka_from_grams,
    feature_map,
    linear_cka,
    penultimate_features,
    probe_accuracy,
)

CPU = torch.device("cpu")


def identity(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 - 0.5


@pytest.mark.parametrize("name", list_models())
def test_cka_of_a_model_with_itself_is_one_in_every_block(name):
    torch.manual_seed(0)
    model = create_model(name, 10)
    with torch.no_grad():  # the ViT's head starts at zero: a constant output has no CKA (nan)
        for p in model.parameters():
            if not p.any():
                p.normal_()
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
    a, b = (block_grams(model, name, images, identity, CPU) for _ in range(2))
    assert list(a) and all(cka_from_grams(a[k], b[k]) == pytest.approx(1.0) for k in a)
    feats = penultimate_features(model, name, images, identity, CPU)
    assert feats.shape[0] == 12 and feats.ndim == 2


def test_linear_cka_ignores_rotation_and_scale_and_sees_independence():
    torch.manual_seed(0)
    x = torch.randn(200, 20)
    q, _ = torch.linalg.qr(torch.randn(20, 20))  # an orthogonal matrix
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)
    assert linear_cka(x, torch.randn(200, 20)) < 0.2


def test_a_probe_on_one_hot_features_is_perfect_and_on_noise_near_chance():
    torch.manual_seed(0)
    train_y, test_y = torch.arange(400) % 4, torch.arange(200) % 4
    one_hot = torch.nn.functional.one_hot
    for kind in ("linear", "knn"):
        perfect = probe_accuracy(
            one_hot(train_y, 4).float(), train_y, one_hot(test_y, 4).float(), test_y, [2], kind=kind
        )
        assert perfect == {"forget": 1.0, "retain": 1.0, "chance": 0.25}
        noise = probe_accuracy(torch.randn(400, 16), train_y, torch.randn(200, 16), test_y, [2], kind=kind)
        assert noise["forget"] < 0.45 and noise["retain"] < 0.45  # chance is 0.25


def test_a_probe_on_an_untrained_model_cannot_tell_a_hard_class_split(digits):
    """Features of a randomly initialised network, and two classes told apart by label alone
    (every image drawn from the same pool): the probe stays near chance."""
    torch.manual_seed(0)
    model = create_model("resnet18", 10)
    images = digits.train.images[:600]
    labels = torch.randint(0, 2, (600,))  # labels unrelated to the images
    feats = penultimate_features(model, "resnet18", images, digits.normalize, CPU)
    result = probe_accuracy(feats[:400], labels[:400], feats[400:], labels[400:], [1])
    assert abs(result["forget"] - 0.5) < 0.2 and abs(result["retain"] - 0.5) < 0.2


def test_feature_map_gives_two_coordinates_per_image():
    x = torch.randn(50, 8)
    for method in ("pca", "tsne"):
        coords = feature_map(x, method=method)
        assert coords.shape == (50, 2) and all(math.isfinite(v) for v in coords.ravel())

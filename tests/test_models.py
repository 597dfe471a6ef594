import pytest
import torch
import torch.nn.functional as F

from unsir_core.errors import UnknownNameError, UnsirError
from unsir_core.models import create_model, list_models


def test_registry_has_the_papers_architectures():
    assert set(list_models()) >= {"resnet18", "allcnn", "mobilenetv2", "vit"}


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("image_size", [32, 48])
def test_forward_backward_reaches_every_parameter(name, image_size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, image_size=image_size)
    x = torch.randn(4, 3, image_size, image_size)
    logits = model(x)
    assert logits.shape == (4, 7)
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 6])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a gradient: {missing}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_unknown_model_names_the_choices():
    with pytest.raises(UnknownNameError, match="unknown model 'vgg'.*resnet18"):
        create_model("vgg", 10)


@pytest.mark.parametrize("name", ["allcnn", "vit"])
def test_pretrained_where_none_exist_is_a_clear_error(name):
    with pytest.raises(UnsirError, match="no pretrained weights"):
        create_model(name, 10, pretrained=True)


def test_pretrained_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached weights
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UnsirError, match="could not load pretrained weights"):
        create_model("resnet18", 10, pretrained=True)


def test_pretrained_head_is_replaced(monkeypatch):
    """With weights available (here: fake ones from a fresh model), the head fits num_classes."""
    import torchvision.models as tvm

    monkeypatch.setattr(
        tvm.ResNet18_Weights.IMAGENET1K_V1, "get_state_dict", lambda *a, **k: tvm.resnet18().state_dict(), raising=False
    )
    model = create_model("resnet18", 7, pretrained=True)
    assert model.fc.out_features == 7


@pytest.mark.parametrize("name", list_models())
def test_the_registered_stages_compose_to_the_model(name):
    from unsir_core.models import model_spec

    torch.manual_seed(0)
    model = create_model(name, 10).eval()
    with torch.no_grad():
        for p in model.parameters():  # the ViT's head starts at zero, which would hide a wrong composition
            if not p.any():
                p.normal_()
        x = torch.randn(3, 3, 32, 32)
        out = x
        for stage in model_spec(name).stages(model):
            out = stage(out)
        assert torch.allclose(out, model(x), atol=1e-5)
    stage_params = {id(p) for s in model_spec(name).stages(model) for p in s.parameters()}
    assert stage_params == {id(p) for p in model.parameters()}  # the stages share, and cover, every parameter

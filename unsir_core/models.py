"""Image classifiers behind a registry: ``create_model(name, num_classes)``, ``list_models()``.

Adding an architecture is one decorated function. Each takes ``num_classes``, the input
``image_size`` (only the ViT needs it) and ``pretrained`` (load torchvision's ImageNet weights
where they exist, replacing the classifier head; this downloads them when not cached).
The registration also says where to look inside the model, so everything about an
architecture is in one place: its classifier ``head`` (whose input is the penultimate
features, ``representation.py``), its named ``blocks`` (compared layer by layer with CKA), its
``stages`` (modules whose composition is the model's forward, so that a leading part can be
frozen and its outputs cached, ``unsir.py``), the layers GradCAM may paint (``cam_layers``,
deepest first; ``explain.py``) and, for a transformer, how its tokens become a feature map
(``cam_reshape``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torchvision.models as tvm

from .errors import UnsirError
from .registry import Registry

ModelFactory = Callable[..., nn.Module]
LayersFn = Callable[[nn.Module], list[nn.Module]]
BlocksFn = Callable[[nn.Module], dict[str, nn.Module]]
ReshapeFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: ModelFactory
    head: Callable[[nn.Module], nn.Module]  # the classifier head of a built model; its input: the features
    blocks: BlocksFn  # named blocks, input to output, whose outputs CKA compares
    stages: LayersFn  # modules (sharing the model's parameters) whose composition is its eval-mode forward
    cam_layers: LayersFn  # candidate GradCAM target layers of a built model, deepest first
    cam_reshape: ReshapeFn | None = None  # (B, tokens, C) -> (B, C, h, w) for a transformer


_MODELS: Registry[ModelSpec] = Registry("model", sort=True)


def register_model(
    name: str,
    *,
    head: Callable[[nn.Module], nn.Module],
    blocks: BlocksFn,
    stages: LayersFn,
    cam_layers: LayersFn,
    cam_reshape: ReshapeFn | None = None,
):
    def wrap(fn: ModelFactory) -> ModelFactory:
        _MODELS[name] = ModelSpec(name, fn, head, blocks, stages, cam_layers, cam_reshape)
        return fn

    return wrap


def list_models() -> list[str]:
    return _MODELS.names()


def model_spec(name: str) -> ModelSpec:
    return _MODELS.lookup(name)


def create_model(name: str, num_classes: int, *, image_size: int = 32, pretrained: bool = False) -> nn.Module:
    """A freshly initialised (or ImageNet-pretrained) model with ``num_classes`` outputs."""
    return model_spec(name).build(num_classes=num_classes, image_size=image_size, pretrained=pretrained)


def stage_count(name: str) -> int:
    """How many stages model ``name`` registers (they do not depend on the class count)."""
    return len(model_spec(name).stages(create_model(name, 10)))


def _pretrained(builder, weights, num_classes: int, head: Callable[[nn.Module], tuple[nn.Module, str]]) -> nn.Module:
    """Build with ImageNet ``weights`` and swap the last linear layer for ``num_classes``."""
    try:
        model = builder(weights=weights)
    except Exception as err:  # network or cache failure, reported with its cause
        raise UnsirError(f"could not load pretrained weights {weights}: {err}") from err
    parent, attr = head(model)
    old: nn.Linear = getattr(parent, attr)
    setattr(parent, attr, nn.Linear(old.in_features, num_classes))
    return model


@register_model(
    "resnet18",
    head=lambda m: m.fc,
    blocks=lambda m: {n: getattr(m, n) for n in ("maxpool", "layer1", "layer2", "layer3", "layer4", "fc")},
    stages=lambda m: [
        nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool),
        m.layer1,
        m.layer2,
        m.layer3,
        m.layer4,
        nn.Sequential(m.avgpool, nn.Flatten(1), m.fc),
    ],
    cam_layers=lambda m: [m.layer4[-1], m.layer3[-1], m.layer2[-1], m.layer1[-1]],
)
def resnet18(num_classes: int, image_size: int = 32, pretrained: bool = False) -> nn.Module:
    """torchvision ResNet18 with its ImageNet stem (7x7 conv, max-pool), as the official code."""
    if pretrained:
        return _pretrained(tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, num_classes, lambda m: (m, "fc"))
    return tvm.resnet18(num_classes=num_classes)


@register_model(
    "mobilenetv2",
    head=lambda m: m.classifier[1],
    blocks=lambda m: {**{f"features.{i}": f for i, f in enumerate(m.features)}, "classifier": m.classifier},
    stages=lambda m: [*m.features, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), m.classifier)],
    cam_layers=lambda m: [m.features[i] for i in range(len(m.features) - 1, 0, -1)],
)
def mobilenetv2(num_classes: int, image_size: int = 32, pretrained: bool = False) -> nn.Module:
    """torchvision MobileNetV2 (width 1.0)."""
    if pretrained:
        return _pretrained(
            tvm.mobilenet_v2, tvm.MobileNet_V2_Weights.IMAGENET1K_V1, num_classes, lambda m: (m.classifier, "1")
        )
    return tvm.mobilenet_v2(num_classes=num_classes)


class _VitEmbedding(nn.Module):
    """The ViT's input stage as a module of its own: patches, class token, position embedding
    (the parameters are the model's own, shared)."""

    def __init__(self, vit: tvm.VisionTransformer):
        super().__init__()
        self.conv_proj, self.dropout = vit.conv_proj, vit.encoder.dropout
        self.class_token, self.pos_embedding = vit.class_token, vit.encoder.pos_embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1 + h*w, C)
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class _VitHead(nn.Module):
    """The ViT's output stage: the last norm, the class token, the classifier."""

    def __init__(self, vit: tvm.VisionTransformer):
        super().__init__()
        self.ln, self.heads = vit.encoder.ln, vit.heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + h*w, C) -> (B, classes)
        return self.heads(self.ln(x)[:, 0])


def vit_tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """(B, 1 + h*w, C) ViT tokens -> (B, C, h, w), dropping the class token."""
    grid = tokens[:, 1:, :]
    side = int(round(grid.shape[1] ** 0.5))
    return grid.reshape(grid.shape[0], side, side, grid.shape[2]).permute(0, 3, 1, 2)


@register_model(
    "vit",
    head=lambda m: m.heads.head,
    blocks=lambda m: {
        **{f"encoder.layers.{i}": layer for i, layer in enumerate(m.encoder.layers)},
        "encoder.ln": m.encoder.ln,
        "heads": m.heads,
    },
    stages=lambda m: [_VitEmbedding(m), *m.encoder.layers, _VitHead(m)],
    cam_layers=lambda m: [m.encoder.layers[-1].ln_1],
    cam_reshape=vit_tokens_to_grid,
)
def vit(num_classes: int, image_size: int = 32, pretrained: bool = False) -> nn.Module:
    """A small ViT for low-resolution input: 4x4 patches (8x8 tokens at 32x32), 6 layers,
    width 192, 3 heads (ViT-Tiny's width). torchvision has no weights at this size."""
    if pretrained:
        raise UnsirError("no pretrained weights exist for the small ViT; train it from scratch")
    patch = 4 if image_size % 4 == 0 else next(p for p in (2, 1) if image_size % p == 0)
    return tvm.VisionTransformer(
        image_size=image_size,
        patch_size=patch,
        num_layers=6,
        num_heads=3,
        hidden_dim=192,
        mlp_dim=768,
        num_classes=num_classes,
    )


class AllCNN(nn.Module):
    """All-CNN-C (Springenberg et al. 2015) with BatchNorm, as used by the Fisher-forgetting
    and UNSIR papers: strided convolutions instead of pooling, global average pool head."""

    def __init__(self, num_classes: int, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        c1, c2 = int(96 * width), int(192 * width)

        def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            conv(in_channels, c1),
            conv(c1, c1),
            conv(c1, c1, stride=2),  # 32 -> 16
            nn.Dropout(0.2),
            conv(c1, c2),
            conv(c2, c2),
            conv(c2, c2, stride=2),  # 16 -> 8
            nn.Dropout(0.2),
            conv(c2, c2),
            conv(c2, c2, k=1),
        )
        self.classifier = nn.Sequential(nn.Conv2d(c2, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, num_classes)
        return self.classifier(self.features(x))


@register_model(
    "allcnn",
    head=lambda m: m.classifier[0],
    blocks=lambda m: {
        **{f"features.{i}": f for i, f in enumerate(m.features) if not isinstance(f, nn.Dropout)},
        "classifier": m.classifier,
    },
    stages=lambda m: [*m.features, m.classifier],
    cam_layers=lambda m: [
        m.features[i] for i in range(len(m.features) - 1, -1, -1) if not isinstance(m.features[i], nn.Dropout)
    ],
)
def allcnn(num_classes: int, image_size: int = 32, pretrained: bool = False) -> nn.Module:
    if pretrained:
        raise UnsirError("no pretrained weights exist for AllCNN; train it from scratch")
    return AllCNN(num_classes)

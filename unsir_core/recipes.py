"""Training recipes: how the original and retrained models are trained.

A recipe is a :class:`TrainConfig`; :data:`RECIPES` holds one per (data set, model), ``"*"``
matching any, and :func:`default_recipe` picks the most specific. The official UNSIR
notebook's CIFAR-10 recipe is the default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .config import Knobs, knob, lookup
from .errors import InvalidConfigError
from .runtime import PRECISIONS


@dataclass(frozen=True)
class TrainConfig(Knobs):
    """A training recipe. The defaults are the official UNSIR notebook's CIFAR-10 recipe."""

    epochs: int = knob(40, "passes over the training set", min=1)
    batch_size: int = knob(256, "samples per step", min=1)
    optimizer: str = knob("adam", "adam, adamw or sgd")
    lr: float = knob(0.01, "initial learning rate", above=0)
    weight_decay: float = knob(1e-4, "L2 penalty (decoupled for adamw)", min=0)
    momentum: float = knob(0.9, "sgd only", min=0)
    grad_clip_value: float | None = knob(0.1, "clamp every gradient element to +-value; None: off", above=0)
    scheduler: str = knob(
        "plateau",
        "plateau (on the held-out loss, as the notebook), cosine, onecycle (per step, peak lr) or none",
        choices=("plateau", "cosine", "onecycle", "none"),
    )
    plateau_factor: float = knob(0.5, "lr multiplier when the held-out loss stops improving", above=0)
    plateau_patience: int = knob(3, "epochs without improvement before the lr drops", min=0)
    augment: bool = knob(False, "random 4-pixel-padded crop and horizontal flip")
    pretrained: bool = knob(False, "start from torchvision ImageNet weights where they exist")
    precision: str = knob(
        "fp32", "fp32, or bf16 / fp16 (CUDA) mixed precision for the forward pass", choices=PRECISIONS
    )

    def with_epochs(self, epochs: int | None) -> TrainConfig:
        return self if epochs is None else replace(self, epochs=epochs)


# The fast recipes: one-cycle SGD with augmentation in bf16 / fp16 autocast where the device
# has it, for CIFAR-sized data sets (exploring a real data set in the dashboard without an hour
# per model). bench/recipes.py measures them against the official recipe.
_FAST = dict(
    optimizer="sgd", grad_clip_value=None, scheduler="onecycle", augment=True, batch_size=256, precision="bf16"
)
_VIT = TrainConfig(
    optimizer="adamw", lr=1e-3, weight_decay=0.05, grad_clip_value=None, scheduler="cosine", augment=True, epochs=40
)
_FAST_BY_MODEL: dict[str, TrainConfig] = {
    "*": TrainConfig(**_FAST, epochs=8, lr=0.1, weight_decay=5e-4),
    "allcnn": TrainConfig(**_FAST, epochs=10, lr=0.1, weight_decay=5e-4),
    "mobilenetv2": TrainConfig(**_FAST, epochs=10, lr=0.1, weight_decay=4e-5),
    "vit": replace(_VIT, scheduler="onecycle", epochs=15, lr=2e-3, precision="bf16", batch_size=256),
}

# Recipes keyed by (data set, model); "*" matches any. The most specific key wins.
RECIPES: dict[tuple[str, str], TrainConfig] = {
    ("*", "*"): TrainConfig(),
    # AllCNN, MobileNetV2 and the ViT do not train stably with Adam at lr 0.01: use the usual
    # recipes for each family, with augmentation, on CIFAR-sized data.
    ("*", "allcnn"): TrainConfig(
        optimizer="sgd", lr=0.05, weight_decay=5e-4, grad_clip_value=None, scheduler="cosine", augment=True, epochs=30
    ),
    ("*", "mobilenetv2"): TrainConfig(
        optimizer="sgd", lr=0.05, weight_decay=4e-5, grad_clip_value=None, scheduler="cosine", augment=True, epochs=30
    ),
    ("*", "vit"): _VIT,
    # The embedded digits set is tiny (1438 training images): a short Adam run converges, three
    # epochs reach what four did and keep a new user's first experiment short (NOTES, "The
    # dashboard's path for a new user").
    ("digits", "*"): TrainConfig(epochs=3, batch_size=64, lr=1e-3, grad_clip_value=None, scheduler="cosine"),
    ("digits", "vit"): replace(_VIT, epochs=25, batch_size=64, augment=False),
    # Fashion-MNIST has no paper recipe: each model's fast recipe (crop and flip suit clothes),
    # in both sets, ResNet18 with fewer epochs (bench/results/recipes_fashionmnist_resnet18.json).
    ("fashionmnist", "*"): replace(_FAST_BY_MODEL["*"], epochs=5),
    **{("fashionmnist", model): _FAST_BY_MODEL[model] for model in ("allcnn", "mobilenetv2", "vit")},
}

# The fast set: the official set's small data sets (already fast) and the fast recipes for the
# others.
FAST_RECIPES: dict[tuple[str, str], TrainConfig] = {
    **RECIPES,
    **{("*", model): recipe for model, recipe in _FAST_BY_MODEL.items()},
}

# Recipe sets by name; "official" is the default and what the paper comparison uses.
RECIPE_SETS: dict[str, dict[tuple[str, str], TrainConfig]] = {"official": RECIPES, "fast": FAST_RECIPES}


def default_recipe(dataset: str, model: str, recipes: str = "official") -> TrainConfig:
    """The recipe for ``model`` on ``dataset`` from the set ``recipes`` (official or fast; the
    official set's CIFAR ResNet18 recipe is the UNSIR notebook's)."""
    if recipes not in RECIPE_SETS:
        raise InvalidConfigError(f"unknown recipe set {recipes!r}; choose one of: {', '.join(RECIPE_SETS)}")
    return lookup(RECIPE_SETS[recipes], dataset, model)


# Fields added to TrainConfig after models were first cached, with the value every model cached
# before them was trained with: at that value they stay out of the cache key (see
# model_cache.model_cache_path), so that those models keep their keys.
KEY_NEUTRAL = {"precision": "fp32"}


def recipe_key(recipe: TrainConfig) -> dict:
    """The recipe as the model cache keys it: every field, but those at their neutral value."""
    return {k: v for k, v in asdict(recipe).items() if k not in KEY_NEUTRAL or KEY_NEUTRAL[k] != v}

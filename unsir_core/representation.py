"""Looking inside a model: its features, and whether a forgotten class is still in them.

Output metrics (``metrics.py``) see only what the head predicts. A method can make the head
stop predicting a class while the features still separate it ("hidden", not "erased"; see
"Are We Truly Forgetting?", arXiv 2503.06991). These functions measure the features. Each
returns data; the definitions are also in docs/metrics.md:

- :func:`penultimate_features`: the input of the classifier head (global-average-pooled when it
  is a feature map), registered per architecture in ``models.py``.
- :func:`probe_accuracy` (representation probe): a classifier fitted on the frozen features of
  a class-balanced sample of ALL classes' training images (a standardised multinomial
  logistic regression, or k-nearest neighbours with cosine distance), scored on test images:
  its accuracy on the forget classes says whether the class is still decodable from the
  features. The retrained model, which never saw the class, gives the reference.
- :func:`linear_cka`: linear centred kernel alignment (Kornblith et al. 2019) of two sets of
  activations of the same images, in [0, 1]; 1 for identical representations up to rotation
  and scale. :func:`block_grams` and :func:`cka_from_grams` give it per named block.
- :func:`feature_map`: a 2-D map (PCA, or t-SNE) of penultimate features, for plotting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .data import Normalize
from .models import model_spec
from .train import eval_mode


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature maps -> (B, C) by global average pooling; anything else -> (B, -1)."""
    return x.float().mean((2, 3)) if x.ndim == 4 else x.float().flatten(1)


@torch.no_grad()
def penultimate_features(
    model: nn.Module,
    model_name: str,
    images: torch.Tensor,
    normalize: Normalize,
    device: torch.device,
    batch_size: int = 500,
) -> torch.Tensor:
    """Features (N, D) on the CPU of uint8 ``images``: what the classifier head receives."""
    head = model_spec(model_name).head(model)
    grabbed: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: grabbed.append(_flat(args[0]).cpu()))
    try:
        with eval_mode(model):
            for start in range(0, len(images), batch_size):
                model(normalize(images[start : start + batch_size].to(device)))
    finally:
        hook.remove()
    return torch.cat(grabbed) if grabbed else torch.empty(0, 0)


def probe_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    forget: Sequence[int],
    *,
    kind: str = "linear",
    neighbours: int = 10,
) -> dict[str, float]:
    """Fit a probe on (``train_x``, ``train_y``) and score it on the test features:
    ``forget`` (accuracy on test samples of the forget classes), ``retain`` (the others) and
    ``chance`` (1 / number of classes). ``kind``: ``linear`` (logistic regression on
    standardised features) or ``knn`` (``neighbours`` nearest, cosine distance)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "linear":
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    elif kind == "knn":
        probe = KNeighborsClassifier(n_neighbors=min(neighbours, len(train_y)), metric="cosine")
    else:
        raise ValueError(f"unknown probe {kind!r}; choose linear or knn")
    probe.fit(train_x.numpy(), train_y.numpy())
    hit = probe.predict(test_x.numpy()) == test_y.numpy()
    is_forget = np.isin(test_y.numpy(), list(forget))
    return {
        "forget": float(hit[is_forget].mean()) if is_forget.any() else float("nan"),
        "retain": float(hit[~is_forget].mean()) if (~is_forget).any() else float("nan"),
        "chance": 1.0 / len(np.unique(train_y.numpy())),
    }


def _centred_gram(x: torch.Tensor) -> torch.Tensor:
    """H K H for K = x x^T (x: (N, D)), in float64."""
    x = x.double().flatten(1)
    x = x - x.mean(0, keepdim=True)  # centring the features centres the Gram matrix
    return x @ x.T


def cka_from_grams(k: torch.Tensor, l: torch.Tensor) -> float:  # noqa: E741  (the usual names)
    """Linear CKA from two centred Gram matrices of the same N images (nan when either
    representation is constant over the images, e.g. a zero-initialised head)."""
    denom = torch.linalg.norm(k) * torch.linalg.norm(l)
    return float((k * l).sum() / denom) if denom > 0 else float("nan")


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of activations ``x`` (N, D1) and ``y`` (N, D2) of the same N inputs."""
    return cka_from_grams(_centred_gram(x), _centred_gram(y))


@torch.no_grad()
def block_grams(
    model: nn.Module, model_name: str, images: torch.Tensor, normalize: Normalize, device: torch.device
) -> dict[str, torch.Tensor]:
    """The centred Gram matrix (N, N) of each named block's output (``models.py`` registers
    the blocks) over uint8 ``images``; CKA between two models is then per block
    :func:`cka_from_grams`. The images (a few hundred) go through in one pass, and each
    block's Gram matrix is made as soon as its output exists, so that one block's activations
    at a time are held."""
    blocks = model_spec(model_name).blocks(model)
    grams: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(
            lambda m, i, o, name=name: grams.__setitem__(name, _centred_gram(o.float().flatten(1).cpu()))
        )
        for name, module in blocks.items()
    ]
    try:
        with eval_mode(model):
            model(normalize(images.to(device)))
    finally:
        for h in hooks:
            h.remove()
    return {name: grams[name] for name in blocks}


def feature_map(features: torch.Tensor, *, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates (N, 2) of ``features`` (N, D): the first two principal components of the
    standardised features (``pca``), or a t-SNE embedding (``tsne``, slower, perplexity 30)."""
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(features.double().numpy())
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed).fit_transform(x)
    raise ValueError(f"unknown map {method!r}; choose pca or tsne")

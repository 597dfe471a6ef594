"""Membership inference: does the model still treat forget-class training images as members?

A population attack (Song and Mittal 2021, "Systematic evaluation of privacy risks"): one
per-sample statistic of the model's output, and a class-balanced logistic regression on it
trained to tell retained-class TRAIN samples (members) from retained-class TEST samples
(non-members). Applied to the forget-class TRAIN samples, ``member_rate`` is the fraction it
calls members and ``member_probability`` their mean membership probability (0.5 when the
attack cannot tell; the hard rate may then jump to 0 or 1); ``attack_accuracy`` is its
accuracy on its own training data (0.5: it cannot tell members at all). Statistics
(:data:`MIA_FEATURES`), with p the softmax output and y the label:

- ``entropy``: ``-sum_i p_i log p_i``;
- ``loss``: the cross-entropy ``-log p_y``;
- ``confidence``: ``p_y``;
- ``modified_entropy``: ``-(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``.

:func:`membership_attacks` runs all of them on the same samples and names the strongest (the
highest attack accuracy): its member rate is the worst case. The retrained model's figures,
from a model that never saw the forget class, are the reference, not 0 or 0.5.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageTensors, Normalize
from .train import predict

_EPS = 1e-12


def _entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)


def _confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.softmax(logits.float(), dim=1).gather(1, labels.view(-1, 1)).squeeze(1)


def _modified_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    p = F.softmax(logits.float(), dim=1)
    py = p.gather(1, labels.view(-1, 1)).squeeze(1)
    others = -(p * (1 - p).clamp_min(_EPS).log())
    others = others.sum(1) - others.gather(1, labels.view(-1, 1)).squeeze(1)
    return -(1 - py) * py.clamp_min(_EPS).log() + others


MIA_FEATURES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "entropy": _entropy,
    "loss": lambda logits, labels: F.cross_entropy(logits.float(), labels, reduction="none"),
    "confidence": _confidence,
    "modified_entropy": _modified_entropy,
}


def _samples(model, members, non_members, target, normalize, device, seed):
    """Logits and labels of a balanced draw of members and non-members, and of the target."""
    gen = torch.Generator().manual_seed(seed)
    n = min(len(members), len(non_members))
    members = members.subset(torch.randperm(len(members), generator=gen)[:n])
    non_members = non_members.subset(torch.randperm(len(non_members), generator=gen)[:n])
    return [(predict(model, s.images, normalize, device), s.labels) for s in (members, non_members, target)]


def _attack(feature: str, members, non_members, target) -> dict:
    from sklearn.linear_model import LogisticRegression

    if feature not in MIA_FEATURES:
        raise ValueError(f"unknown MIA feature {feature!r}; choose one of {sorted(MIA_FEATURES)}")
    fn = MIA_FEATURES[feature]

    def feats(logits_labels) -> np.ndarray:
        return fn(*logits_labels).clamp(-1e4, 1e4).numpy().reshape(-1, 1)

    x = np.concatenate([feats(members), feats(non_members)])
    y = np.concatenate([np.ones(len(members[1])), np.zeros(len(non_members[1]))])
    attack = LogisticRegression(class_weight="balanced", solver="lbfgs", max_iter=1000)
    attack.fit(x, y)
    target_x = feats(target)
    return {
        "member_rate": float(attack.predict(target_x).mean()),
        "member_probability": float(attack.predict_proba(target_x)[:, 1].mean()),
        "attack_accuracy": float(attack.score(x, y)),
        "feature": feature,
    }


def membership_inference(
    model: nn.Module,
    members: ImageTensors,
    non_members: ImageTensors,
    target: ImageTensors,
    normalize: Normalize,
    device: torch.device,
    *,
    feature: str = "entropy",
    seed: int = 0,
) -> dict[str, float]:
    """The attack on one statistic ``feature`` of ``members`` (label 1) vs ``non_members``
    (label 0), applied to ``target`` (see the module docstring for the figures)."""
    return _attack(feature, *_samples(model, members, non_members, target, normalize, device, seed))


def membership_attacks(
    model: nn.Module,
    members: ImageTensors,
    non_members: ImageTensors,
    target: ImageTensors,
    normalize: Normalize,
    device: torch.device,
    *,
    seed: int = 0,
) -> dict:
    """Every attack of :data:`MIA_FEATURES` on the same samples: the entropy attack's figures
    at the top level (as runs have always reported them), each attack under ``attacks``, and
    ``strongest``, the attack with the highest attack accuracy, whose member rate and attack
    accuracy are also given as ``worst_member_rate`` and ``worst_attack_accuracy``."""
    samples = _samples(model, members, non_members, target, normalize, device, seed)
    attacks = {feature: _attack(feature, *samples) for feature in MIA_FEATURES}
    strongest = max(attacks, key=lambda f: attacks[f]["attack_accuracy"])
    worst = attacks[strongest]
    return {
        **attacks["entropy"],
        "attacks": attacks,
        "strongest": strongest,  # over several seeds: the first seed's; the worst_* figures are averaged
        "worst_member_rate": worst["member_rate"],
        "worst_attack_accuracy": worst["attack_accuracy"],
    }

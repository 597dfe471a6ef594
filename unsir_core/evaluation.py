"""Evaluating a model of an experiment: accuracies, then the metrics beyond accuracy by name.

Each metric beyond accuracy is registered under the name users pick it by (``--metrics``, the
dashboard) with the key it is stored under in metrics.json. Most are computed from a model and
an :class:`EvalContext`, what every model of one experiment is measured against: the data,
the forget classes, the reference models (original and retrained), the relearn threshold and
the fixed image sets that feature-level metrics share. Scores (``kind="score"``, e.g. ToW) are
computed afterwards from a model's figures and the retrained model's. The definitions are in
``metrics.py``, ``privacy.py``, ``representation.py`` and docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .data import DataBundle, ImageTensors, retained_classes
from .metrics import (
    accuracy_report,
    confusion_matrix,
    layer_distances,
    output_distance,
    prediction_distribution,
    relearn_time,
    tug_of_war,
    zrf,
)
from .models import create_model
from .presentation import (
    ACCURACY_COLUMNS,
    BENCH,
    COMPARE,
    SECONDS_COLUMN,
    SUMMARY,
    Column,
    Presentation,
    dig,
)
from .privacy import MIA_FEATURES, membership_attacks
from .registry import Registry
from .representation import block_grams, cka_from_grams, feature_map, penultimate_features, probe_accuracy
from .runtime import ProgressFn
from .train import predict

PROBE_PER_CLASS = 200  # training images of each class the representation probe is fitted on...
PROBE_TRAIN_MAX = 4000  # ...but no more than this many in all (CIFAR-100: 40 of each class)
PROBE_SEED_OFFSET = 7919  # the probe's images are drawn apart from Dr_sub (same seed, other stream)
FIXED_PER_GROUP = 250  # forget-class and retained-class test images that CKA and the feature map share


@dataclass(frozen=True)
class EvalSplits:
    """The forget / retained parts of both splits, selected once per experiment (CIFAR's
    retained training set alone is 135 MB: copying it for every model evaluated is waste)."""

    forget_train: ImageTensors
    forget_test: ImageTensors
    retain_train: ImageTensors
    retain_test: ImageTensors

    @classmethod
    def of(cls, data: DataBundle, forget: Sequence[int]) -> EvalSplits:
        retain = retained_classes(forget, data.num_classes)
        return cls(
            data.train.select(forget), data.test.select(forget), data.train.select(retain), data.test.select(retain)
        )


@dataclass(frozen=True)
class EvalContext:
    """What every model of one experiment is measured against."""

    data: DataBundle
    forget: tuple[int, ...]
    device: torch.device
    splits: EvalSplits
    original: nn.Module | None  # the reference of the weight distance and of CKA
    retrained: nn.Module | None  # the reference of the output distance, of CKA and of the scores
    relearn_threshold: float  # forget accuracy (test) at which relearning counts as done
    seed: int
    model_name: str = ""  # the architecture (feature-level metrics find its head and blocks by it)
    memo: dict = field(default_factory=dict, compare=False, repr=False)  # what is computed once per context

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, the first time ``key`` is asked for in this context."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def fixed_images(self) -> dict[str, ImageTensors]:
        """Up to :data:`FIXED_PER_GROUP` forget-class and as many retained-class test images,
        drawn once (seed 0), the same for every model and every seed."""

        def draw() -> dict[str, ImageTensors]:
            gen = torch.Generator().manual_seed(0)
            out = {}
            for group, split in (("forget", self.splits.forget_test), ("retain", self.splits.retain_test)):
                idx = torch.randperm(len(split), generator=gen)[:FIXED_PER_GROUP].sort().values
                out[group] = split.subset(idx)
            return out

        return self.once("fixed images", draw)


@dataclass(frozen=True)
class Metric:
    name: str  # as users pick it
    key: str  # where metrics.json stores it
    fn: Callable[..., Any]  # (model, ctx), or for a score (entry, retrained entry, ctx)
    needs: str | None  # "original" or "retrained": skipped when the context has no such model
    kind: str  # "model" (measured on the model) or "score" (from the figures, after every model)
    averaged: bool = True  # False: over several seeds, the first seed's figure is kept (e.g. a 2-D map)
    present: Presentation = Presentation()  # how it is shown: columns, charts, teaching text


_METRICS: Registry[Metric] = Registry("metric")


def register_metric(
    name: str,
    key: str,
    *,
    needs: str | None = None,
    kind: str = "model",
    averaged: bool = True,
    present: Presentation | None = None,
):
    def wrap(fn: Callable[..., Any]):
        _METRICS[name] = Metric(name, key, fn, needs, kind, averaged, present or Presentation())
        return fn

    return wrap


def unregister_metric(name: str) -> None:
    """Remove metric ``name`` (a plug-in's or a test's)."""
    _METRICS.pop(name, None)


def presentations(by: str = "key") -> dict[str, Presentation]:
    """Each metric's presentation by its metrics.json key (or its ``name``), in registration order."""
    return {getattr(m, by): m.present for m in _METRICS.values()}


def table_columns(where: str | None = None) -> list[Column]:
    """The columns of a model's figures, in order: the accuracies, each metric's, the wall time;
    only those shown ``where`` (presentation.SUMMARY, COMPARE or BENCH), or all of them."""
    columns = [*ACCURACY_COLUMNS, *(c for m in _METRICS.values() for c in m.present.columns), SECONDS_COLUMN]
    return [c for c in columns if where is None or where in c.show]


def list_metrics() -> list[str]:
    """The metrics beyond accuracy, in the order they are computed and stored."""
    return _METRICS.names()


def unaveraged_keys() -> list[str]:
    """The metrics.json keys whose figures are not averaged over seeds (the first seed's is kept)."""
    return [m.key for m in _METRICS.values() if not m.averaged]


def check_metrics(names: Sequence[str]) -> None:
    for name in names:
        _METRICS.lookup(name)


@register_metric(
    "predictions",
    "prediction_distribution",
    present=Presentation(
        summary="what the forget images are classified as",
        charts=("predictions",),
        section="outputs",
        teaching="What each model predicts for the forget class's test images: after forgetting they spread over "
        "the classes that look like it, as the retrained model's do, rather than piling onto one.",
    ),
)
def _predictions(model: nn.Module, ctx: EvalContext) -> list[int]:
    logits = predict(model, ctx.splits.forget_test.images, ctx.data.normalize, ctx.device)
    return prediction_distribution(logits, ctx.data.num_classes)


@register_metric(
    "distance",
    "layer_distance",
    needs="original",
    present=Presentation(
        summary="per-layer weight distance to the original",
        charts=("layer_distance",),
        section="outputs",
        teaching="How far each layer's weights moved from the original's (L2, log scale), beside the retrained "
        "model's distance: unlearning that touches only a few layers changes far less than retraining does.",
    ),
)
def _distance(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    return layer_distances(model, ctx.original)


def _worst_member_rate(entry) -> float | None:
    mia = entry.get("mia") or {}
    worst = mia.get("worst_member_rate")
    if worst is None and mia.get("strongest"):  # a run stored before the worst rate was recorded
        worst = ((mia.get("attacks") or {}).get(mia["strongest"]) or {}).get("member_rate")
    return worst


@register_metric(
    "mia",
    "mia",
    present=Presentation(
        summary="membership inference (four attacks, the strongest reported)",
        columns=(
            Column("mia_entropy", "MIA member rate", dig("mia", "member_rate"), show=(SUMMARY,)),
            *(
                Column(f"mia_{f}", f"MIA member rate ({f})", dig("mia", "attacks", f, "member_rate"), show=())
                for f in MIA_FEATURES
                if f != "entropy"
            ),
            Column("mia_worst", "MIA worst member rate", _worst_member_rate, show=(SUMMARY, COMPARE, BENCH)),
        ),
        section="outputs",
        teaching="MIA member rate: the share of the forget class's training images a membership attack (on the "
        "entropy of the outputs) calls members; the worst is that of the strongest of four attacks. Compare with "
        "the retrained model's, which never saw them.",
    ),
)
def _mia(model: nn.Module, ctx: EvalContext) -> dict:
    s = ctx.splits
    return membership_attacks(
        model, s.retain_train, s.retain_test, s.forget_train, ctx.data.normalize, ctx.device, seed=ctx.seed
    )


@register_metric(
    "output_distance",
    "output_distance",
    needs="retrained",
    present=Presentation(
        summary="JS divergence of the outputs to the retrained model",
        columns=(Column("js_to_retrained", "JS to retrained", dig("output_distance", "js_divergence"), "score", 4),),
        section="outputs",
        teaching="JS to retrained: mean Jensen-Shannon divergence of the outputs on forget-class test images from "
        "the retrained model's (0: it answers as the retrained model does).",
    ),
)
def _output_distance(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    return output_distance(model, ctx.retrained, ctx.splits.forget_test.images, ctx.data.normalize, ctx.device)


@register_metric(
    "relearn",
    "relearn",
    present=Presentation(
        summary="steps to relearn the class",
        columns=(Column("relearn_steps", "relearn steps", dig("relearn", "steps"), kind="count"),),
        section="outputs",
        teaching="Relearn steps: fine-tuning steps until the forget class is recognised again; a class truly "
        "erased takes about as long as for the retrained model.",
    ),
)
def _relearn(model: nn.Module, ctx: EvalContext) -> dict:
    retain = retained_classes(ctx.forget, ctx.data.num_classes)
    dr = ctx.data.train.sample_per_class(retain, 100, seed=ctx.seed)
    s = ctx.splits
    return relearn_time(
        model,
        s.forget_train,
        dr,
        s.forget_test,
        ctx.data.normalize,
        ctx.device,
        threshold=ctx.relearn_threshold,
        seed=ctx.seed,
    )


@register_metric(
    "confusion",
    "confusion_matrix",
    present=Presentation(
        summary="confusion matrix",
        charts=("confusion",),
        teaching="True class (rows) against predicted class (columns) on the test split. After forgetting, the "
        "forget class's row spreads over similar classes, like the retrained model's, rather than piling onto one.",
    ),
)
def _confusion(model: nn.Module, ctx: EvalContext) -> list[list[int]]:
    logits = predict(model, ctx.data.test.images, ctx.data.normalize, ctx.device)
    return confusion_matrix(logits, ctx.data.test.labels, ctx.data.num_classes)


@register_metric(
    "probe",
    "probe",
    present=Presentation(
        summary="is the class still decodable from the features?",
        columns=(
            Column(
                "probe_linear_forget",
                "probe forget acc (linear)",
                dig("probe", "linear", "forget"),
                show=(SUMMARY, COMPARE, BENCH),
            ),
            Column("probe_knn_forget", "probe forget acc (k-NN)", dig("probe", "knn", "forget"), show=(BENCH,)),
            Column("probe_linear_retain", "probe retain acc (linear)", dig("probe", "linear", "retain"), show=()),
        ),
        charts=("probe",),
        teaching="A linear classifier (and a k-NN one) fitted on the model's frozen penultimate features of every "
        "class. If it still recognises the forget class while the model's own head does not, the class was "
        "**hidden, not erased**. Compare with the retrained model: it never saw the class, yet its features may "
        "separate it too (similar classes share features); that level is what erasing can reach.",
    ),
)
def _probe(model: nn.Module, ctx: EvalContext) -> dict[str, dict[str, float]]:
    """Linear and k-NN probes on the model's penultimate features: fitted on
    :data:`PROBE_PER_CLASS` training images of every class (at most :data:`PROBE_TRAIN_MAX`
    in all; forget classes included; drawn apart from Dr_sub), scored on every forget-class
    test image and up to 1000 retained ones."""

    def sets() -> tuple[ImageTensors, ImageTensors]:
        per_class = min(PROBE_PER_CLASS, max(1, PROBE_TRAIN_MAX // ctx.data.num_classes))
        seed = ctx.seed + PROBE_SEED_OFFSET
        train = ctx.data.train.sample_per_class(range(ctx.data.num_classes), per_class, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        retain = ctx.splits.retain_test
        retain = retain.subset(torch.randperm(len(retain), generator=gen)[:1000].sort().values)
        test = ImageTensors(
            torch.cat([ctx.splits.forget_test.images, retain.images]),
            torch.cat([ctx.splits.forget_test.labels, retain.labels]),
        )
        return train, test

    train, test = ctx.once("probe sets", sets)
    feats = [
        penultimate_features(model, ctx.model_name, s.images, ctx.data.normalize, ctx.device) for s in (train, test)
    ]
    return {
        kind: probe_accuracy(feats[0], train.labels, feats[1], test.labels, ctx.forget, kind=kind)
        for kind in ("linear", "knn")
    }


def _grams(model: nn.Module, ctx: EvalContext, group: str) -> dict[str, torch.Tensor]:
    """Per-block centred Gram matrices of ``model`` on the fixed ``group`` images (those of the
    original and retrained models computed once per context)."""
    images = ctx.fixed_images()[group].images

    def compute() -> dict[str, torch.Tensor]:
        return block_grams(model, ctx.model_name, images, ctx.data.normalize, ctx.device)

    for ref_name in ("original", "retrained"):
        if model is getattr(ctx, ref_name):
            return ctx.once(f"grams {ref_name} {group}", compute)
    return compute()


def _cka_blocks(entry, reference: str) -> list[tuple[str, float]]:
    """(block, CKA on forget-class images against ``reference``) of the last two feature blocks,
    the last first (the classifier, registered last, left out)."""
    blocks = list((((entry.get("cka") or {}).get("forget") or {}).get(reference) or {}).items())[:-1]
    return list(reversed(blocks[-2:]))


def _cka_column(reference: str, position: int, label: str, show: tuple[str, ...]) -> Column:
    def get(entry) -> float | None:
        blocks = _cka_blocks(entry, reference)
        return blocks[position][1] if position < len(blocks) else None

    suffix = "features" + ("_prev" if position else "")
    return Column(f"cka_{reference}_{suffix}", label, get, "score", show=show)


def _cka_notes(entry) -> dict[str, str]:
    return {
        f"cka_{reference}_features{'_prev' if position else ''}_block": block
        for reference in ("original", "retrained")
        for position, (block, _) in enumerate(_cka_blocks(entry, reference))
    }


@register_metric(
    "cka",
    "cka",
    needs="original",
    present=Presentation(
        summary="representation similarity per block",
        columns=(
            _cka_column("original", 0, "CKA to original (forget, last block)", (BENCH,)),
            _cka_column("original", 1, "CKA to original (forget, block before)", ()),
            _cka_column("retrained", 0, "CKA to retrained (forget, last block)", (BENCH,)),
            _cka_column("retrained", 1, "CKA to retrained (forget, block before)", ()),
        ),
        charts=("cka",),
        notes=_cka_notes,
        teaching="Linear CKA between this model's activations and a reference model's, block by block (1: the same "
        "representation up to rotation and scale). Unlearning that only touches the head keeps CKA to the original "
        "near 1 in every block; retraining changes the deep blocks, so CKA to the retrained model is the target.",
    ),
)
def _cka(model: nn.Module, ctx: EvalContext) -> dict[str, dict[str, dict[str, float]]]:
    """Linear CKA per block against the original and (when there is one) the retrained model,
    on the fixed forget-class and retained-class test images separately:
    ``{group: {reference: {block: cka}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for group in ctx.fixed_images():
        mine = _grams(model, ctx, group)
        out[group] = {}
        for ref_name in ("original", "retrained"):
            reference = getattr(ctx, ref_name)
            if reference is not None:
                ref = _grams(reference, ctx, group)
                out[group][ref_name] = {block: cka_from_grams(mine[block], ref[block]) for block in mine}
    return out


@register_metric(
    "feature_map",
    "feature_map",
    averaged=False,  # PCA axes differ from seed to seed
    present=Presentation(
        summary="2-D map of the features",
        charts=("feature_map",),
        teaching="The penultimate features of the same test images, projected to 2-D (PCA). The forget class "
        "(large dark dots) forms its own cluster in the original; after erasing it should dissolve into the others, "
        "as in the retrained model. With several seeds, the map is the first seed's (PCA axes differ between seeds, "
        "so maps cannot be averaged).",
    ),
)
def _feature_map(model: nn.Module, ctx: EvalContext) -> dict[str, list]:
    """PCA of the penultimate features of the fixed test images: ``x``, ``y`` and the true
    ``label`` of each image (the same images, in the same order, for every model)."""
    fixed = ctx.fixed_images()
    images = torch.cat([fixed["forget"].images, fixed["retain"].images])
    labels = torch.cat([fixed["forget"].labels, fixed["retain"].labels])
    coords = feature_map(penultimate_features(model, ctx.model_name, images, ctx.data.normalize, ctx.device))
    return {"x": coords[:, 0].round(4).tolist(), "y": coords[:, 1].round(4).tolist(), "label": labels.tolist()}


@register_metric(
    "zrf",
    "zrf",
    present=Presentation(
        summary="how much the outputs look like a random model's",
        columns=(Column("zrf", "ZRF", dig("zrf"), "score", show=(SUMMARY, COMPARE, BENCH)),),
        teaching="ZRF: 1 - mean Jensen-Shannon divergence (bits) from a random model's outputs on forget images "
        "(the retrained model's value is the reference).",
    ),
)
def _zrf(model: nn.Module, ctx: EvalContext) -> float:
    def random_model() -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # seeded, without moving the global generator
            torch.manual_seed(ctx.seed)
            model = create_model(ctx.model_name, ctx.data.num_classes, image_size=ctx.data.image_shape[-1])
        return model.to(ctx.device).eval()

    return zrf(
        model, ctx.once("random model", random_model), ctx.splits.forget_test.images, ctx.data.normalize, ctx.device
    )


@register_metric(
    "tow",
    "tow",
    needs="retrained",
    kind="score",
    present=Presentation(
        summary="one score of closeness to the retrained model's accuracies",
        columns=(Column("tow", "ToW", dig("tow"), "score", show=(SUMMARY, COMPARE, BENCH)),),
        teaching="ToW: product over forget set, retain set and test set of 1 - |accuracy - the retrained model's| "
        "(1 is the retrained model).",
    ),
)
def _tow(entry: dict, reference: dict, ctx: EvalContext) -> float:
    """ToW from the accuracies already measured (train splits, and the whole test split)."""
    n_forget, n_retain = len(ctx.splits.forget_test), len(ctx.splits.retain_test)

    def terms(e: dict) -> dict[str, float]:
        test = (n_forget * e["forget_acc"] + n_retain * e["retain_acc"]) / (n_forget + n_retain)
        return {"forget_acc_train": e["forget_acc_train"], "retain_acc_train": e["retain_acc_train"], "test_acc": test}

    return tug_of_war(terms(entry), terms(reference))


def _applies(metric: Metric, ctx: EvalContext, which: Sequence[str]) -> bool:
    return metric.name in which and (metric.needs is None or getattr(ctx, metric.needs) is not None)


def extra_metrics(model: nn.Module, ctx: EvalContext, which: Sequence[str]) -> dict:
    """The metrics beyond accuracy named in ``which`` that are measured on the model, under
    their metrics.json keys, in registration order; one that needs a reference model the
    context lacks is left out."""
    check_metrics(which)
    return {m.key: m.fn(model, ctx) for m in _METRICS.values() if m.kind == "model" and _applies(m, ctx, which)}


def add_scores(models: dict[str, dict], ctx: EvalContext, which: Sequence[str]) -> None:
    """Add the scores named in ``which`` to every model's figures (needs the retrained
    model's figures, ``models["retrained"]``)."""
    reference = models.get("retrained")
    for m in _METRICS.values():
        if m.kind == "score" and _applies(m, ctx, which) and reference is not None:
            for entry in models.values():
                entry[m.key] = m.fn(entry, reference, ctx)


def evaluate_model(
    model: nn.Module, ctx: EvalContext, which: Sequence[str], progress: ProgressFn | None = None
) -> dict:
    """Every metric of ``model``: the accuracies (metrics.py), then those named in ``which``."""
    return accuracy_report(model, ctx.data, ctx.forget, ctx.device, progress) | extra_metrics(model, ctx, which)

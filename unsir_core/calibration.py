"""Calibrated UNSIR: choose the impair and repair step sizes for THIS model, zero-glance.

The impair learning rate that forgets a class without wrecking the others depends on how the
model was trained (bench/results/NOTES.md, "Calibration"), and a user's model comes without
its recipe. So :func:`calibrated_unsir` tries impair learning rates on a ladder (steps of
sqrt(10); the repair's follows at ``repair_ratio``), every trial on one shared preparation (the
noise, Dr_sub through the frozen stages), and scores each on what it can measure without a
forget-class sample:

- **retained accuracy** on a held-out slice of retained training images that Dr_sub does not
  hold (never the test split), against the original model's on the same slice;
- the **forgetting signal**: the share of forget-class *probes* the trial still classifies as
  their class. A probe is a held-out retained image the original finds most like a forget class,
  pushed by gradient steps on the original until it calls it that class as surely as it
  typically calls a retained image its own (:func:`forget_probes`).

From ``calibration_lr_start`` it goes up the ladder until a trial forgets (signal at most
``forget_signal_max``), then down while a gentler rate still forgets and the kept one costs
held-out accuracy. When the kept rate still costs held-out accuracy, the gentler rate below it
is tried once more with one more repair epoch (a longer repair on retained data both restores
the retained classes and pushes the probes further out of the forget class), and taken if it
forgets at a smaller cost; when the kept one costs more than ``retain_tolerance``, so is the
kept rate itself. Where the classes hold fewer images than a full Dr_sub, the chosen trial is
then repaired for the epochs a full Dr_sub would have taken (:func:`top_up_epochs`), and the
longer repair is kept if it still forgets and costs no more held-out accuracy. The setting is
taken when its held-out accuracy (after the top-up, if kept) is within ``retain_tolerance`` of
the original's; otherwise :class:`CalibrationError` lists every setting tried, rather than
return a model that did not forget or was broken. The chosen trial's model is the result (the
same as uncalibrated UNSIR at that rate and seed, plus the top-up); every trial is in its
history (``phase: "calibration"``, the top-up ``"calibration_top_up"``) and the search's cost
is the ``calibration`` phase.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import ImageTensors, forbid_classes
from .errors import UnsirError
from .methods import UnlearnResult
from .runtime import ProgressFn, check_precision, grad_scaler, synchronize
from .train import frozen
from .unsir import Prepared, UnsirConfig, _outputs, check_zero_glance, impair_and_repair, prepare, repair

PROBE_STEPS = 60  # Adam steps that push look-alikes across into their forget class (most stop sooner)
PROBE_LR = 0.01  # per step, relative to the inputs' standard deviation


class CalibrationError(UnsirError):
    """No setting tried both forgets (by the signal) and keeps the retained classes."""


def ladder(cfg: UnsirConfig) -> list[float]:
    """The impair learning rates a calibration may try: from ``calibration_lr_min`` up by
    factors of sqrt(10) to ``calibration_lr_max`` (inclusive, within rounding)."""
    count = int(math.floor(2 * math.log10(cfg.calibration_lr_max / cfg.calibration_lr_min) + 1e-9)) + 1
    return [cfg.calibration_lr_min * 10 ** (i / 2) for i in range(max(count, 1))]


def holdout_size(cfg: UnsirConfig) -> Callable[[int], int]:
    """How many of a retained class's training images to hold out: ``calibration_holdout``,
    at most a fifth of the class (small data sets keep most of it for Dr_sub)."""
    return lambda count: min(cfg.calibration_holdout, count // 5)


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row, the logit of ``labels`` minus the largest other logit (> 0: classified so)."""
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    return own - logits.scatter(1, labels.view(-1, 1), -math.inf).max(1).values


def forget_probes(
    model: nn.Module, x: torch.Tensor, logits: torch.Tensor, forget: Sequence[int], per_class: int, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-ins for forget-class samples, made from retained images only: for each forget
    class, the ``per_class`` held-out images ``x`` (inputs of ``model``, its ``logits``) the
    model finds most like that class, each pushed by gradient steps on ``model`` until the
    model classifies it as the class with ``margin`` (its loss then stops pushing it; Adam's
    momentum may carry it a little further, which the measurements were made with).
    Returns ``(probes, their forget class)``. ``model``'s weights are not changed."""
    starts, labels = [], []
    for c in forget:
        idx = logits[:, c].topk(min(per_class, len(x))).indices
        starts.append(x[idx])
        labels.append(torch.full((len(idx),), c, dtype=torch.int64, device=x.device))
    probes, target = torch.cat(starts).clone().requires_grad_(True), torch.cat(labels)
    optimizer = torch.optim.Adam([probes], lr=PROBE_LR * float(x.std()))
    with frozen(model):
        for _ in range(PROBE_STEPS):
            out = model(probes).float()
            short = margins(out, target) < margin  # the samples still short of the margin
            if not short.any():
                break
            loss = (F.cross_entropy(out, target, reduction="none") * short).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return probes.detach(), target


@dataclass
class _Scorer:
    """Scores a trial on the held-out slice (inputs of the trained part, labels) and on the
    forget-class probes made from it."""

    x: torch.Tensor
    y: torch.Tensor
    retain_acc: float  # the original's accuracy on the slice
    probes: torch.Tensor
    probe_labels: torch.Tensor
    probe_acc: float  # the original's accuracy on the probes (1 unless a probe fell short)

    @classmethod
    def of(cls, prep: Prepared, holdout: ImageTensors, normalize, forget: list[int], cfg: UnsirConfig, device):
        x = normalize(holdout.images.to(device))
        if prep.prefix is not None:
            x = _outputs(prep.prefix, x)
        y = holdout.labels.to(device)
        logits = _outputs(prep.trained, x).float()
        right = logits.argmax(1) == y
        # as sure of each probe as the original is of most retained training images it knows (probe_quantile)
        margin = float(margins(logits[right], y[right]).quantile(cfg.probe_quantile)) if right.any() else 0.0
        probes, labels = forget_probes(prep.trained, x, logits, forget, cfg.calibration_probes, margin)
        probe_acc = (_outputs(prep.trained, probes).argmax(1) == labels).float().mean().item()
        return cls(x, y, right.float().mean().item(), probes, labels, probe_acc)

    def score(self, trained: nn.Module) -> dict[str, float]:
        retain_acc = (_outputs(trained, self.x).argmax(1) == self.y).float().mean().item()
        return {
            "retain_acc": retain_acc,
            "retain_drop": self.retain_acc - retain_acc,
            "signal": (_outputs(trained, self.probes).argmax(1) == self.probe_labels).float().mean().item(),
        }


def calibrated_unsir(
    model: nn.Module,
    forget_classes: Sequence[int],
    dr_sub: ImageTensors,
    holdout: ImageTensors,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    cfg: UnsirConfig,
    device: torch.device | str = "cpu",
    *,
    seed: int = 0,
    progress: ProgressFn | None = None,
    model_name: str | None = None,
    exhaustive: bool = False,
    on_trial: Callable[[dict, nn.Module], None] | None = None,
) -> UnlearnResult:
    """UNSIR on a copy of ``model`` with the impair / repair learning rates chosen for it
    (module docstring). ``dr_sub`` and ``holdout`` are disjoint sets of retained-class
    training samples; no forget-class sample is read. ``exhaustive``: try every rung (for
    benchmarks; the choice is the same rule); ``on_trial(record, model)`` sees each trial's
    model (benchmarks measure it)."""
    device = torch.device(device)
    check_precision(cfg.precision, device)
    forget = check_zero_glance(forget_classes, dr_sub)
    check_zero_glance(forget, holdout)
    if not len(holdout):
        raise CalibrationError(
            "calibration needs held-out retained images, and no retained class has the 5 training images it takes "
            "one from: choose another preset (e.g. --preset tuned)"
        )
    gen = torch.Generator().manual_seed(seed)
    phases = {"noise": 0.0, "calibration": 0.0, "impair": 0.0, "repair": 0.0}
    history: list[dict] = []
    rates = ladder(cfg)
    with forbid_classes(forget):
        synchronize(device)
        start = time.perf_counter()
        prep = prepare(model, forget, dr_sub, normalize, cfg, device, gen, progress=progress, model_name=model_name)
        synchronize(device)
        phases["noise"] = time.perf_counter() - start
        t = time.perf_counter()
        scorer = _Scorer.of(prep, holdout, normalize, forget, cfg, device)
        # every trial draws as the uncalibrated run would: its shuffles (gen) and dropout (torch's own)
        after_noise, global_state = gen.get_state(), _rng_state(device)
        trials: dict[tuple[int, int], tuple[dict, nn.Module]] = {}

        def trial(i: int, more_repair: int = 0) -> dict:
            if (i, more_repair) not in trials:
                trained = copy.deepcopy(prep.trained)
                tcfg = replace(
                    cfg,
                    impair_lr=rates[i],
                    repair_lr=rates[i] * cfg.repair_ratio,
                    repair_epochs=cfg.repair_epochs + more_repair,
                )
                own = {"impair": 0.0, "repair": 0.0}
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    _set_rng_state(device, global_state)
                    impair_and_repair(
                        trained, prep, tcfg, device, torch.Generator().set_state(after_noise),
                        phases=own, history=[], scaler=grad_scaler(device, cfg.precision),
                    )  # fmt: skip
                record = {
                    "phase": "calibration",
                    "trial": len(trials) + 1,
                    "impair_lr": tcfg.impair_lr,
                    "repair_lr": tcfg.repair_lr,
                    "repair_epochs": tcfg.repair_epochs,
                    **{f"{k}_seconds": v for k, v in own.items()},
                    **scorer.score(trained),
                }
                record["forgets"] = record["signal"] <= cfg.forget_signal_max
                record["keeps"] = record["retain_drop"] <= cfg.retain_tolerance
                trials[i, more_repair] = (record, trained)
                if on_trial is not None:
                    on_trial(record, nn.Sequential(prep.prefix, trained) if prep.prefix is not None else trained)
                if progress:
                    progress("calibration", len(trials), max(len(trials), len(rates)))
            return trials[i, more_repair][0]

        first = min(range(len(rates)), key=lambda i: abs(math.log(rates[i] / cfg.calibration_lr_start)))
        chosen = _search(trial, len(rates), first, exhaustive)
        searched = time.perf_counter() - t
        history.append(
            {
                "phase": "calibration_setup",
                "original_retain_acc": scorer.retain_acc,  # on the held-out slice
                "holdout": len(scorer.y),
                "probes": len(scorer.probe_labels),
                "original_probe_acc": scorer.probe_acc,
            }
        )
        for key in sorted(trials, key=lambda key: trials[key][0]["trial"]):
            history.append({**trials[key][0], "chosen": key == chosen})
        if chosen is None:
            raise CalibrationError(_failure(history[1:], cfg, scorer.retain_acc))
        record, trained = trials[chosen]
        trained, top_up = _top_up(trained, record, prep, scorer, cfg, device, gen, progress)
        if top_up is not None:
            history.append(top_up)
        if (top_up if top_up is not None and top_up["taken"] else record)["retain_drop"] > cfg.retain_tolerance:
            raise CalibrationError(_failure(history[1:], cfg, scorer.retain_acc))
        prep.trained.load_state_dict(trained.state_dict())  # the chosen trial's weights into the model
        unlearned = prep.finish()
        seconds = time.perf_counter() - start
    # the chosen trial is the unlearning itself: its impair and repair are reported as such, and
    # the calibration phase is everything else the search cost (the other trials, the scoring)
    phases["impair"], phases["repair"] = record["impair_seconds"], record["repair_seconds"]
    phases["calibration"] = searched - phases["impair"] - phases["repair"]
    if top_up is not None:  # the top-up is repair when taken, and a search cost when not
        phases["repair" if top_up["taken"] else "calibration"] += top_up["seconds"]
    return UnlearnResult(unlearned, seconds, phases, history)


def top_up_epochs(cfg: UnsirConfig, dr_sub_size: int, classes: int, repair_epochs: int) -> int:
    """Repair epochs to add to the chosen trial's ``repair_epochs`` so that its repair sees as
    many samples as ``cfg.repair_epochs`` epochs over a full Dr_sub would (``dr_sub_per_class``
    per retained class): 0 unless the classes hold fewer training images than that. One epoch
    over a small data set's Dr_sub is a few optimiser steps, and the held-out slice (training
    images the model fits) does not see what that leaves unrepaired on unseen ones
    (bench/results/NOTES.md, "repair top-up")."""
    wanted = cfg.repair_epochs * -(-cfg.dr_sub_per_class * classes // max(dr_sub_size, 1))
    return max(wanted - repair_epochs, 0)


def _top_up(trained, record, prep, scorer, cfg, device, gen, progress) -> tuple[nn.Module, dict | None]:
    """The chosen trial's model repaired for :func:`top_up_epochs` more epochs at its repair
    rate, if any, and the top-up's record; the longer repair is taken (the model returned is
    it) only if it still forgets and costs no more held-out accuracy than the trial did."""
    extra = top_up_epochs(cfg, len(prep.dr_y), len(prep.dr_y.unique()), record["repair_epochs"])
    if not extra:
        return trained, None
    t = time.perf_counter()
    topped = copy.deepcopy(trained)
    longer = replace(cfg, repair_lr=record["repair_lr"], repair_epochs=extra)
    repair(topped, prep.dr_x, prep.repair_y, longer, device, generator=gen, progress=progress,
           scaler=grad_scaler(device, cfg.precision))  # fmt: skip
    synchronize(device)
    top_up = {
        "phase": "calibration_top_up",
        "impair_lr": record["impair_lr"],
        "repair_lr": record["repair_lr"],
        "repair_epochs": record["repair_epochs"] + extra,
        "top_up_epochs": extra,
        **scorer.score(topped),
    }
    top_up["taken"] = top_up["signal"] <= cfg.forget_signal_max and top_up["retain_drop"] <= record["retain_drop"]
    top_up["seconds"] = time.perf_counter() - t
    return (topped if top_up["taken"] else trained), top_up


def _rng_state(device: torch.device) -> tuple:
    """torch's global random state (and the device's, on CUDA)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(device: torch.device, state: tuple) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)


def _search(trial: Callable[..., dict], n: int, start: int, exhaustive: bool) -> tuple[int, int] | None:
    """The setting to keep, as (rung, extra repair epochs): from ``start``, up the ladder until
    a trial forgets; then down while the gentler rung still forgets, as long as the kept one
    costs held-out retained accuracy (one that costs none has nothing to gain from a gentler
    rate). If the kept rung still costs some, the rung below it with one more repair epoch
    replaces it when that forgets at a smaller cost; if the kept one does not keep the retained
    classes, the kept rung with one more repair epoch is the last try. None when even the
    strongest rate does not forget. ``exhaustive``: every rung tried, the same choice made."""
    if exhaustive:
        for i in range(n):
            trial(i)
    i = start
    while not trial(i)["forgets"]:
        if i == n - 1:
            return None
        i += 1
    while i > 0 and trial(i)["retain_drop"] > 0 and trial(i - 1)["forgets"]:
        i -= 1
    best, kept = (i, 0), trial(i)
    if i > 0 and kept["retain_drop"] > 0:
        gentler = trial(i - 1, 1)
        if gentler["forgets"] and gentler["retain_drop"] < kept["retain_drop"]:
            best, kept = (i - 1, 1), gentler
    if not kept["keeps"]:
        longer = trial(i, 1)
        if longer["forgets"] and longer["retain_drop"] < kept["retain_drop"]:
            best = (i, 1)
    return best


def _failure(history: list[dict], cfg: UnsirConfig, original_acc: float) -> str:
    tried = "; ".join(
        f"impair lr {h['impair_lr']:.2g} with {h['repair_epochs']} repair epoch(s): signal {h['signal']:.3f}, "
        f"held-out retained accuracy {h['retain_acc']:.3f}"
        for h in sorted(history, key=lambda h: (h["impair_lr"], h["repair_epochs"]))
    )
    return (
        f"calibration found no impair learning rate between {cfg.calibration_lr_min:g} and "
        f"{cfg.calibration_lr_max:g} that forgets (forgetting signal <= {cfg.forget_signal_max:g}) and keeps the "
        f"retained classes (held-out accuracy within {cfg.retain_tolerance:g} of the original's {original_acc:.3f}); "
        f"no model is returned. Tried: {tried}. Widen calibration_lr_min / calibration_lr_max, allow a larger "
        "retain_tolerance, or raise dr_sub_per_class / repair_epochs"
    )

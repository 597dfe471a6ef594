"""SCRUB: the distillation loss on known values, the official defaults, and the max-min
passes on digits."""

import math

import torch
import torch.nn.functional as F

from unsir_core.methods import method_config, unlearn
from unsir_core.scrub import ScrubConfig, distill_kl
from unsir_core.train import predict

CPU = torch.device("cpu")


def test_distill_kl_is_the_temperature_scaled_kl_to_the_teacher_averaged_over_the_batch():
    student = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    T = 2.0
    by_hand = []
    for s_row, t_row in zip(student, teacher, strict=True):
        p, q = torch.softmax(t_row / T, 0), torch.softmax(s_row / T, 0)  # teacher, student
        by_hand.append(float((p * (p / q).log()).sum()) * T * T)
    assert math.isclose(float(distill_kl(student, teacher, T)), sum(by_hand) / 2, rel_tol=1e-6)  # the mean
    assert abs(float(distill_kl(teacher, teacher, T))) < 1e-6


def test_defaults_are_the_official_large_scale_settings():
    assert method_config("scrub", "cifar10", "resnet18") == ScrubConfig(
        rounds=3,
        max_rounds=2,
        lr=5e-4,
        retain_batch=256,
        forget_batch=512,
        temperature=4.0,
        ce_weight=0.99,
        kl_weight=0.001,
    )


def _kl_to(model, teacher, images, normalize):
    return float(
        F.kl_div(
            F.log_softmax(predict(model, images, normalize, CPU), 1),
            F.softmax(predict(teacher, images, normalize, CPU), 1),
            reduction="batchmean",
        )
    )


def test_the_student_moves_away_from_the_teacher_on_forget_data_only(digits, trained_digits_model):
    cfg = ScrubConfig(rounds=2, max_rounds=1, lr=0.01)
    result = unlearn("scrub", trained_digits_model, "resnet18", digits, (3,), CPU, cfg, seed=0)
    assert [h["phase"] for h in result.history] == ["scrub_max", "scrub_min", "scrub_min"]
    assert set(result.phases) == {"max", "min"} and result.phases["max"] > 0
    forget, retain = digits.test.select([3]), digits.test.select([0, 1, 2, 4, 5, 6, 7, 8, 9])
    away = _kl_to(result.model, trained_digits_model, forget.images, digits.normalize)
    close = _kl_to(result.model, trained_digits_model, retain.images, digits.normalize)
    assert away > 5 * close, (away, close)
    # without max passes it is distillation on retained data only: nothing pushes forget away
    plain = unlearn(
        "scrub", trained_digits_model, "resnet18", digits, (3,), CPU, ScrubConfig(rounds=2, max_rounds=0, lr=0.01)
    )
    assert [h["phase"] for h in plain.history] == ["scrub_min", "scrub_min"]
    assert _kl_to(plain.model, trained_digits_model, forget.images, digits.normalize) < away

"""Each metric pinned on tiny cases whose answer is known by hand."""

import copy
import math

import pytest
import torch
from torch import nn

from unsir_core.data import ImageTensors
from unsir_core.metrics import (
    layer_distances,
    output_distance,
    prediction_distribution,
    relearn_time,
    split_accuracy,
)
from unsir_core.models import create_model
from unsir_core.privacy import membership_inference

CPU = torch.device("cpu")


def identity(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


def test_accuracy_and_prediction_counts_by_hand():
    # 6 samples: labels 0 0 1 1 2 2; predictions 0 1 1 1 2 0 -> forget {2}: 1/2, retain {0,1}: 3/4
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 1, 1, 1, 2, 0])
    logits = torch.nn.functional.one_hot(preds, 3).float()
    assert split_accuracy(logits, labels, [2]) == (0.5, 0.75)
    assert prediction_distribution(logits[labels == 2], 3) == [1, 0, 1]
    assert prediction_distribution(logits, 4) == [2, 3, 1, 0]


def test_identical_models_have_zero_distance_in_every_layer():
    a = create_model("resnet18", 10)
    d = layer_distances(a, copy.deepcopy(a))
    assert len(d) == len({n.rsplit(".", 1)[0] for n, _ in a.named_parameters()})
    assert set(d.values()) == {0.0}


def test_layer_distance_is_the_l2_norm_of_the_change():
    a = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[1].weight += torch.tensor([[3.0, 0.0]])
        b[1].bias += torch.tensor([4.0])
    assert layer_distances(b, a) == {"0": 0.0, "1": pytest.approx(5.0, rel=1e-6)}


def test_mia_on_a_model_that_never_saw_the_data_is_near_chance():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (600, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 4, (600,))
    split = [ImageTensors(images[i::3], labels[i::3]) for i in range(3)]
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))  # untrained: members are no different
    for feature in ("entropy", "loss"):
        result = membership_inference(model, split[0], split[1], split[2], identity, CPU, feature=feature)
        assert 0.4 < result["member_probability"] < 0.6
        assert result["attack_accuracy"] < 0.6


def test_mia_detects_memorised_members():
    torch.manual_seed(0)
    members = ImageTensors(torch.randint(0, 256, (64, 3, 4, 4), dtype=torch.uint8), torch.randint(0, 2, (64,)))
    others = ImageTensors(torch.randint(0, 256, (64, 3, 4, 4), dtype=torch.uint8), torch.randint(0, 2, (64,)))
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 256), nn.ReLU(), nn.Linear(256, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):  # memorise the members' random labels
        loss = nn.functional.cross_entropy(model(identity(members.images)), members.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    result = membership_inference(model, members, others, members, identity, CPU, feature="loss")
    assert result["member_rate"] > 0.9 and result["attack_accuracy"] > 0.7


def test_output_distance_is_zero_for_the_same_model_and_bounded():
    model = create_model("allcnn", 3)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    same = output_distance(model, copy.deepcopy(model), images, identity, CPU)
    assert same["js_divergence"] == pytest.approx(0.0, abs=1e-6) and same["activation_distance"] == pytest.approx(0.0)
    other = output_distance(model, create_model("allcnn", 3), images, identity, CPU)
    assert 0 <= other["js_divergence"] <= 0.6932


def test_relearn_time_of_the_original_is_zero(digits, trained_digits_model):
    forget_test = digits.test.select([3])
    result = relearn_time(
        trained_digits_model,
        digits.train.select([3]),
        digits.train.select([0, 1]),
        forget_test,
        digits.normalize,
        CPU,
        threshold=0.8,
    )
    assert result == {"steps": 0, "epochs": 0.0, "reached": True, "threshold": 0.8}


def test_relearn_time_counts_steps_until_the_threshold(digits):
    torch.manual_seed(0)
    fresh = create_model("allcnn", 10)
    result = relearn_time(
        fresh,
        digits.train.select([3]),
        digits.train.select([0, 1]),
        digits.test.select([3]),
        digits.normalize,
        CPU,
        threshold=0.5,
        max_steps=60,
        eval_every=5,
        batch_size=32,
    )
    assert result["reached"] and 0 < result["steps"] <= 60 and result["steps"] % 5 == 0
    capped = relearn_time(
        fresh,
        digits.train.select([3]),
        digits.train.select([0, 1]),
        digits.test.select([3]),
        digits.normalize,
        CPU,
        threshold=1.01,
        max_steps=10,
    )
    assert capped["steps"] == 10 and not capped["reached"]


def test_confusion_matrix_matches_a_hand_count():
    from unsir_core.metrics import confusion_matrix

    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    logits = torch.nn.functional.one_hot(predicted, 3).float()
    assert confusion_matrix(logits, labels, 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_tow_of_the_retrained_model_against_itself_is_one():
    from unsir_core.metrics import tug_of_war

    retrained = {"forget_acc_train": 0.0, "retain_acc_train": 0.97, "test_acc": 0.8}
    assert tug_of_war(retrained, retrained) == 1.0
    original = {"forget_acc_train": 1.0, "retain_acc_train": 0.99, "test_acc": 0.9}
    assert tug_of_war(original, retrained) == pytest.approx(0.0)
    half = {"forget_acc_train": 0.5, "retain_acc_train": 0.97, "test_acc": 0.8}
    assert tug_of_war(half, retrained) == pytest.approx(0.5)


def test_zrf_is_one_against_itself_and_bounded():
    from unsir_core.metrics import zrf

    model = create_model("allcnn", 3)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    assert zrf(model, copy.deepcopy(model), images, identity, CPU) == pytest.approx(1.0)
    assert 0 <= zrf(model, create_model("allcnn", 3), images, identity, CPU) <= 1


def test_mia_statistics_match_their_definitions():
    from unsir_core.privacy import MIA_FEATURES

    p = torch.tensor([[0.7, 0.2, 0.1]])
    logits, label = p.log(), torch.tensor([0])
    stats = {name: float(fn(logits, label)) for name, fn in MIA_FEATURES.items()}
    assert stats["confidence"] == pytest.approx(0.7)
    assert stats["loss"] == pytest.approx(-math.log(0.7))
    assert stats["entropy"] == pytest.approx(-sum(x * math.log(x) for x in (0.7, 0.2, 0.1)))
    mentr = -(1 - 0.7) * math.log(0.7) - 0.2 * math.log(0.8) - 0.1 * math.log(0.9)
    assert stats["modified_entropy"] == pytest.approx(mentr)


def test_every_attack_is_reported_with_the_strongest(digits, trained_digits_model):
    from unsir_core.privacy import MIA_FEATURES, membership_attacks, membership_inference

    retain, forget = digits.train.select([0, 1, 2]), digits.train.select([3])
    args = (trained_digits_model, retain, digits.test.select([0, 1, 2]), forget, digits.normalize, CPU)
    result = membership_attacks(*args, seed=0)
    assert set(result["attacks"]) == set(MIA_FEATURES)
    best = max(a["attack_accuracy"] for a in result["attacks"].values())
    assert result["attacks"][result["strongest"]]["attack_accuracy"] == best
    assert {k: result[k] for k in ("member_rate", "attack_accuracy")} == {
        k: membership_inference(*args, seed=0)[k] for k in ("member_rate", "attack_accuracy")
    }  # the headline figures are the entropy attack's, as before

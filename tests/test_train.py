from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from unsir_core.errors import NonFiniteLossError
from unsir_core.recipes import TrainConfig, default_recipe
from unsir_core.runtime import resolve_device
from unsir_core.train import augment_batch, fit, predict, train_one_epoch


def test_official_recipe_is_the_default_for_cifar_resnet18():
    r = default_recipe("cifar10", "resnet18")
    assert (r.epochs, r.batch_size, r.optimizer, r.lr, r.weight_decay, r.grad_clip_value, r.scheduler) == (
        40,
        256,
        "adam",
        0.01,
        1e-4,
        0.1,
        "plateau",
    )
    assert default_recipe("cifar10", "vit").optimizer == "adamw"
    assert default_recipe("digits", "resnet18").epochs < 40


def test_fit_learns_the_digits(digits, trained_digits_model):
    logits = predict(trained_digits_model, digits.test.images, digits.normalize, torch.device("cpu"))
    assert (logits.argmax(1) == digits.test.labels).float().mean() > 0.85


def test_fit_reports_history_and_time(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    small = digits.train.subset(torch.arange(256))
    result = fit(
        model,
        small,
        digits.normalize,
        TrainConfig(epochs=3, batch_size=64, lr=1e-3),
        torch.device("cpu"),
        held_out=digits.test,
    )
    assert len(result.history) == 3 and result.seconds > 0
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert "held_out_loss" in result.history[0]


def test_nan_loss_stops_training_with_a_clear_error():
    model = nn.Linear(4, 2)
    loader = [(torch.full((2, 4), float("nan")), torch.tensor([0, 1]))]
    with pytest.raises(NonFiniteLossError, match="impair: the loss became nan"):
        train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"), phase="impair")


def test_a_loss_fn_gets_the_batchs_further_tensors_and_drives_the_step():
    model = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    x, y, target = torch.ones(4, 3), torch.tensor([0, 1, 0, 1]), torch.full((4, 2), 2.0)
    seen = []

    def squared_error(logits, labels, extra):
        seen.append((labels, extra))
        return ((logits - extra) ** 2).mean()

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = train_one_epoch(model, [(x, y, target)], opt, torch.device("cpu"), loss_fn=squared_error)
    assert torch.equal(seen[0][0], y) and torch.equal(seen[0][1], target)
    assert stats.loss == 4.0  # (0 - 2)^2 before the step, not a cross-entropy
    # the mean is over 4 x 2 entries: d loss / d w_ij = sum over samples of 2 (0 - 2) / 8 = -2
    torch.testing.assert_close(model.weight, torch.full((2, 3), 0.2))


def test_augment_keeps_shape_and_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert set(out.unique().tolist()) <= set(x.unique().tolist()) | {0.0}  # pixels moved, none invented
    assert (out != 0).float().mean() >= 0.25  # at most 4 of 8 rows and columns come from the padding


def test_auto_device_falls_back_to_cpu_here():
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    assert resolve_device("cpu").type == "cpu"


# --- precision and the fast recipes ------------------------------------------------------------


def test_bf16_autocast_predicts_like_fp32(digits, trained_digits_model):
    cpu = torch.device("cpu")
    full = predict(trained_digits_model, digits.test.images, digits.normalize, cpu)
    half = predict(trained_digits_model, digits.test.images, digits.normalize, cpu, precision="bf16")
    assert half.dtype == torch.float32  # metrics are computed in fp32 whatever the forward pass
    assert not torch.equal(full, half)  # bf16 did run (it rounds)
    agree = (full.argmax(1) == half.argmax(1)).float().mean()
    assert agree > 0.97
    assert (full.softmax(1) - half.softmax(1)).abs().max() < 0.1


def test_bf16_training_steps_are_finite_and_learn(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    small = digits.train.subset(torch.arange(512))
    cfg = TrainConfig(epochs=3, batch_size=64, lr=1e-3, grad_clip_value=None, scheduler="none", precision="bf16")
    history = fit(model, small, digits.normalize, cfg, torch.device("cpu")).history
    assert history[-1]["loss"] < history[0]["loss"]


def test_fp16_needs_cuda_and_unknown_precisions_are_refused():
    from unsir_core.errors import InvalidConfigError, UnsirError
    from unsir_core.runtime import autocast

    with pytest.raises(UnsirError, match="fp16 mixed precision needs a CUDA device"):
        autocast(torch.device("cpu"), "fp16")
    with pytest.raises(InvalidConfigError, match="precision must be one of fp32, bf16, fp16"):
        TrainConfig(precision="fp8")


def test_onecycle_warms_up_to_the_peak_and_anneals(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    small = digits.train.subset(torch.arange(256))
    cfg = TrainConfig(epochs=4, batch_size=64, optimizer="sgd", lr=0.05, grad_clip_value=None, scheduler="onecycle")
    lrs = [e["lr"] for e in fit(model, small, digits.normalize, cfg, torch.device("cpu")).history]
    # lr at the end of each epoch of 4 steps: just past the peak (step 4 of 16) after epoch 1, then down
    assert 0.045 < lrs[0] < 0.05
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(0.05 / 25 / 1e4)  # the last step's


def test_recipe_sets():
    from unsir_core.errors import InvalidConfigError

    fast = default_recipe("cifar10", "resnet18", "fast")
    official = default_recipe("cifar10", "resnet18", "official")
    assert official == default_recipe("cifar10", "resnet18")  # official is the default set
    assert fast.scheduler == "onecycle" and fast.epochs < official.epochs and fast.precision == "bf16"
    for model in ("allcnn", "mobilenetv2", "vit"):
        assert default_recipe("cifar10", model, "fast").epochs < default_recipe("cifar10", model).epochs
    assert default_recipe("digits", "resnet18", "fast") == default_recipe("digits", "resnet18")  # already fast
    # Fashion-MNIST has no paper recipe: one per model in both sets, each model's own family
    # (the data set's "*" entry must not shadow the per-model ones), ResNet18's shorter
    for model in ("resnet18", "allcnn", "mobilenetv2", "vit"):
        assert default_recipe("fashionmnist", model) == default_recipe("fashionmnist", model, "fast")
        if model != "resnet18":
            assert default_recipe("fashionmnist", model) == default_recipe("cifar10", model, "fast")
    assert default_recipe("fashionmnist", "resnet18") == replace(fast, epochs=5)
    with pytest.raises(InvalidConfigError, match="unknown recipe set 'quick'; choose one of: official, fast"):
        default_recipe("cifar10", "resnet18", "quick")


def test_new_recipe_fields_keep_old_cache_keys(digits, tmp_path):
    """A field added later (precision) is out of the key at its old value: models cached before
    it keep their names; any other value is a different model."""
    from dataclasses import replace

    from unsir_core.model_cache import model_cache_path

    recipe = default_recipe("digits", "resnet18")

    def cached(r):
        return model_cache_path(digits, "resnet18", r, range(10), seed=0, cache_dir=tmp_path)

    bf16 = replace(recipe, precision="bf16")
    assert "precision" not in cached(recipe)[1]["recipe"]  # keyed as before the field existed
    assert cached(bf16)[1]["recipe"]["precision"] == "bf16" and cached(bf16)[0] != cached(recipe)[0]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimisers_are_fused_on_the_cpu_and_step_like_the_default_implementation(name):
    """Every optimiser of a recipe is fused where the device has the kernel, and its updates are
    torch's default implementation's (a frozen parameter, without a gradient, is left alone)."""
    from unsir_core.train import make_optimizer

    cfg = TrainConfig(optimizer=name, lr=0.05, weight_decay=1e-3)
    torch.manual_seed(0)
    fused, plain = (
        nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)),
        nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)),
    )
    plain.load_state_dict(fused.state_dict())
    for m in (fused, plain):
        m[0].bias.requires_grad_(False)
    opt_fused = make_optimizer(fused, cfg)
    assert opt_fused.defaults["fused"] is True
    settings = {k: v for k, v in opt_fused.defaults.items() if k in ("lr", "weight_decay", "momentum", "nesterov")}
    opt_plain = type(opt_fused)(plain.parameters(), **settings)  # torch's default implementation
    assert opt_plain.defaults["fused"] is None
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    start = [p.detach().clone() for p in fused.parameters()]
    for _ in range(5):
        for m, opt in ((fused, opt_fused), (plain, opt_plain)):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
    for a, b in zip(fused.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    moved = [not torch.equal(a, s) for a, s in zip(fused.parameters(), start, strict=True)]
    assert moved == [True, False, True, True]  # it trained, all but the frozen bias


def test_optimisers_keep_torchs_default_where_there_is_no_fused_kernel():
    from unsir_core.runtime import new_optimizer

    meta = nn.Linear(2, 2, device="meta")  # a device without the fused kernel
    assert new_optimizer(torch.optim.Adam, meta.parameters(), lr=0.1).defaults["fused"] is None
    groups = [{"params": [nn.Linear(2, 2).weight]}, {"params": meta.parameters(), "lr": 0.01}]
    sgd = new_optimizer(torch.optim.SGD, groups, lr=0.1)
    assert sgd.defaults["fused"] is None  # every group counts ...
    assert [len(g["params"]) for g in sgd.param_groups] == [1, 2]  # ... and keeps its parameters
    cpu = nn.Linear(2, 2)
    assert new_optimizer(torch.optim.Adam, cpu.parameters(), lr=0.1, foreach=False).defaults["fused"] is None


def test_evaluation_on_cuda_uses_deterministic_kernels_and_gives_the_settings_back():
    from unsir_core.runtime import deterministic_kernels

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.benchmark, matmul.allow_tf32 = True, True  # as a user's script may have set them
    try:
        with deterministic_kernels(torch.device("cuda")):
            assert (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32) == (
                False,
                True,
                False,
                False,
            )
        assert (cudnn.benchmark, matmul.allow_tf32) == (True, True)
        with deterministic_kernels(torch.device("cpu")):
            assert cudnn.benchmark and matmul.allow_tf32  # nothing to change on a CPU
    finally:
        cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = before

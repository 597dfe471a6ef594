"""The command line end to end on digits, and its handling of bad input."""

import json
import pathlib
import subprocess
import sys

import pytest
import torch

from unsir_core.cli import main
from unsir_core.datasets import list_datasets, load_dataset
from unsir_core.models import list_models

QUICK = ["--epochs", "1", "--noise-steps", "3", "--noise-batch", "16", "--dr-sub-per-class", "20", "--quiet"]


def run_cli(*args: str) -> None:
    main(list(args))


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "unsir_core", "experiment", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in (
        "--dataset",
        "--model",
        "--forget",
        "--data-dir",
        "--seed",
        "--device",
        "--epochs",
        "--out",
        "--impair-lr",
        "--repair-lr",
        "--dr-sub-per-class",
        "--preset",
        "--no-retrain",
    ):
        assert flag in out.stdout


def test_experiment_writes_complete_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    run_cli("experiment", "--dataset", "digits", "--model", "resnet18", "--forget", "2,8", "--out", str(out), *QUICK)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["forget_classes"] == [2, 8]
    assert set(metrics["models"]) == {"original", "retrained", "unsir"}
    for name, m in metrics["models"].items():
        for key in ("forget_acc", "retain_acc", "forget_acc_train", "retain_acc_train", "seconds"):
            assert key in m, (name, key)
        assert 0 <= m["forget_acc"] <= 1 and 0 <= m["retain_acc"] <= 1
    assert set(metrics["models"]["unsir"]["phases"]) == {"noise", "impair", "repair"}
    cfg = metrics["config"]
    assert cfg["seed"] == 0 and cfg["train"]["epochs"] == 1 and cfg["unsir"]["noise_steps"] == 3
    assert cfg["dr_sub_size"] == 8 * 20 and metrics["environment"]["torch"]
    assert (out / "unsir.safetensors").is_file()
    assert "unsir" in capsys.readouterr().out

    # a second run reuses the cached original and retrained models
    run_cli("experiment", "--dataset", "digits", "--model", "resnet18", "--forget", "2,8", "--out", str(out), *QUICK)
    again = json.loads((out / "metrics.json").read_text())
    assert again["models"]["original"]["cached"] and again["models"]["retrained"]["cached"]
    assert again["models"]["original"]["seconds"] == metrics["models"]["original"]["seconds"]
    assert again["models"]["original"]["retain_acc"] == metrics["models"]["original"]["retain_acc"]


@pytest.mark.parametrize(
    "forget, message",
    [
        ("10", "out of range"),
        ("", "no forget class"),
        ("0,1,2,3,4,5,6,7,8,9", "at least one class must be retained"),
        ("x", "unknown class 'x'"),
    ],
)
def test_bad_forget_classes_exit_2_and_write_nothing(tmp_path, capsys, forget, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            "experiment", "--dataset", "digits", "--model", "resnet18", "--forget", forget, "--out", str(out), *QUICK
        )
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("flag, value", [("--dataset", "mnist"), ("--model", "vgg16")])
def test_unknown_names_exit_2(tmp_path, capsys, flag, value):
    args = {"--dataset": "digits", "--model": "resnet18", flag: value}
    with pytest.raises(SystemExit) as exit_info:
        run_cli("experiment", *[x for kv in args.items() for x in kv], "--forget", "3", "--out", str(tmp_path / "r"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and err.startswith("error: ") and err.count("\n") == 1  # no usage text


def test_missing_cifar_offline_exit_2(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            "experiment",
            "--dataset",
            "cifar10",
            "--model",
            "resnet18",
            "--forget",
            "3",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "r"),
            *QUICK,
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and str(tmp_path / "data") in err
    assert not (tmp_path / "r").exists()


def test_nan_loss_during_impair_exit_2_keeps_the_original_checkpoint(tmp_path, capsys):
    cache = tmp_path / "cache"
    common = ["--dataset", "digits", "--model", "resnet18", "--forget", "3", "--cache-dir", str(cache), "--no-retrain"]
    run_cli("experiment", *common, "--out", str(tmp_path / "ok"), *QUICK)
    [ckpt] = cache.glob("*original*.safetensors")
    before = ckpt.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        run_cli("experiment", *common, "--out", str(tmp_path / "nan"), *QUICK, "--impair-lr", "1e20")
    assert exit_info.value.code == 2
    assert "loss became" in capsys.readouterr().err
    assert ckpt.read_bytes() == before and not (tmp_path / "nan").exists()


def test_mismatched_cached_checkpoint_is_reported(tmp_path, capsys):
    cache = tmp_path / "cache"
    common = ["--dataset", "digits", "--forget", "3", "--cache-dir", str(cache), "--no-retrain", *QUICK]
    run_cli("experiment", "--model", "allcnn", *common, "--out", str(tmp_path / "a"))
    [ckpt] = cache.glob("*allcnn-original*.safetensors")
    ckpt.write_bytes(b"corrupted")  # e.g. a disk error or a half-copied file
    with pytest.raises(SystemExit):
        run_cli("experiment", "--model", "allcnn", *common, "--out", str(tmp_path / "b"))
    assert "not a readable safetensors checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("model", list_models())
def test_every_model_trains_and_unlearns_on_digits(tmp_path, model):
    out = tmp_path / model
    run_cli(
        "experiment",
        "--dataset",
        "digits",
        "--model",
        model,
        "--forget",
        "5",
        "--out",
        str(out),
        "--no-retrain",
        *QUICK,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"] == model and "unsir" in metrics["models"]


def test_fashionmnist_experiment_runs_offline_from_the_debian_folder(tmp_path, monkeypatch):
    """The issue's command, `experiment --dataset fashionmnist --model resnet18 --forget 0`, on a
    small stand-in for Debian's package (the real package loads whole in test_data): no network,
    the data set's own recipe and UNSIR defaults, the class named as Fashion-MNIST names it."""
    import socket

    import unsir_core.datasets as datasets
    from tests.fakes import fake_fashion
    from unsir_core.recipes import default_recipe
    from unsir_core.unsir_method import default_unsir

    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    monkeypatch.setattr(socket, "socket", lambda *a, **k: pytest.fail("the experiment opened a socket"))
    fake_fashion(tmp_path / "debian", n_train=200, n_test=50)
    out = tmp_path / "run"
    args = ["--dataset", "fashionmnist", "--model", "resnet18", "--forget", "0", "--data-dir", str(tmp_path / "data")]
    run_cli("experiment", *args, "--out", str(out), "--epochs", "1", "--noise-steps", "2", "--quiet")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["forget_classes"] == [0] and metrics["forget_class_names"] == ["T-shirt/top"]
    assert set(metrics["models"]) == {"original", "retrained", "unsir"}
    cfg = metrics["config"]
    recipe, unsir = default_recipe("fashionmnist", "resnet18"), default_unsir("fashionmnist", "resnet18")
    assert {k: cfg["train"][k] for k in ("optimizer", "lr", "scheduler", "augment")} == {
        "optimizer": recipe.optimizer,
        "lr": recipe.lr,
        "scheduler": recipe.scheduler,
        "augment": recipe.augment,
    }
    assert cfg["unsir"]["impair_lr"] == unsir.impair_lr and cfg["unsir"]["repair_lr"] == unsir.repair_lr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())  # nothing downloaded


def test_datasets_listed(capsys):
    run_cli("list")
    out = capsys.readouterr().out
    assert all(name in out for name in list_datasets() + list_models())


def test_methods_and_seeds_report_every_metric_with_spread(tmp_path, capsys):
    out = tmp_path / "cmp"
    run_cli(
        "experiment",
        "--dataset",
        "digits",
        "--model",
        "resnet18",
        "--forget",
        "2,8",
        "--out",
        str(out),
        "--methods",
        "unsir,retrain,finetune,neggrad,fisher",
        "--seeds",
        "0,1",
        "--set",
        "finetune.epochs=1",
        "--set",
        "fisher.samples=64",
        *QUICK,
    )
    m = json.loads((out / "metrics.json").read_text())
    n_forget_test = int(sum((load_dataset("digits").test.labels == c).sum() for c in (2, 8)))
    assert m["config"]["seeds"] == [0, 1] and len(m["per_seed"]) == 2 and not m["errors"]
    assert m["config"]["method_configs"]["finetune"]["epochs"] == 1
    assert set(m["models"]) == {"original", "retrained", "unsir", "finetune", "neggrad", "fisher"}
    for name, entry in m["models"].items():
        for key in (
            "forget_acc",
            "retain_acc",
            "forget_acc_train",
            "retain_acc_train",
            "seconds",
            "relearn",
            "prediction_distribution",
            "mia",
            "layer_distance",
        ):
            assert key in entry, (name, key)
        assert "forget_acc" in entry["std"]
        assert sum(entry["prediction_distribution"]) == pytest.approx(n_forget_test)  # every forget test image
    assert m["models"]["original"]["relearn"]["steps"] == 0
    assert set(m["models"]["original"]["layer_distance"].values()) == {0.0}
    assert "output_distance" in m["models"]["unsir"]
    assert m["models"]["unsir"]["zero_glance"] and not m["models"]["neggrad"]["zero_glance"]
    assert {p.name for p in out.glob("*.safetensors")} == {
        f"{n}.safetensors" for n in ("unsir", "finetune", "neggrad", "fisher")
    }
    assert "+-" in capsys.readouterr().out  # mean +- std in the printed table


def test_a_failing_method_is_reported_and_the_rest_completes(tmp_path, capsys, monkeypatch):
    from unsir_core import methods as registry

    fisher = registry.get_method("fisher")

    def out_of_memory(task, cfg):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setitem(registry._METHODS, "fisher", type(fisher)("fisher", out_of_memory, fisher.config, False, ""))
    out = tmp_path / "r"
    run_cli(
        "experiment",
        "--dataset",
        "digits",
        "--model",
        "resnet18",
        "--forget",
        "3",
        "--out",
        str(out),
        "--methods",
        "unsir,fisher",
        "--no-retrain",
        "--metrics",
        "accuracy",
        *QUICK,
    )
    m = json.loads((out / "metrics.json").read_text())
    assert "unsir" in m["models"] and "fisher" not in m["models"]
    assert "out of memory" in m["errors"]["fisher"]
    assert "warning: fisher failed" in capsys.readouterr().err


def test_bad_set_and_unknown_method_exit_2(tmp_path, capsys):
    for extra, message in (
        (["--set", "neggrad.speed=3"], "has no field 'speed'"),
        (["--methods", "unsir,magic"], "unknown method 'magic'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(
                "experiment",
                "--dataset",
                "digits",
                "--model",
                "resnet18",
                "--forget",
                "3",
                "--out",
                str(tmp_path / "x"),
                *QUICK,
                *extra,
            )
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_runs_lists_stored_runs(tmp_path, capsys):
    run_cli(
        "experiment",
        "--dataset",
        "digits",
        "--model",
        "allcnn",
        "--forget",
        "1",
        "--out",
        str(tmp_path / "r1"),
        "--no-retrain",
        "--metrics",
        "accuracy",
        *QUICK,
    )
    capsys.readouterr()
    run_cli("runs", str(tmp_path))
    assert "r1" in capsys.readouterr().out


# --- bad input is refused before any work, and loses nothing ---------------------------------


def experiment(tmp_path, *extra: str) -> None:
    cache = tmp_path / "cache"
    run_cli(
        "experiment",
        "--dataset",
        "digits",
        "--model",
        "resnet18",
        "--forget",
        "3",
        "--cache-dir",
        str(cache),
        "--no-retrain",
        "--metrics",
        "accuracy",
        *QUICK,
        *extra,
    )


def assert_refused(tmp_path, capsys, message: str, *extra: str) -> None:
    """Exit 2 with ``message`` on stderr and no model trained (the cache stays empty)."""
    with pytest.raises(SystemExit) as exit_info:
        experiment(tmp_path, *extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list((tmp_path / "cache").glob("*.safetensors")), "work started before the input was checked"


def test_out_on_a_folder_that_is_not_a_run_is_refused_and_kept(tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("four years of work")
    assert_refused(tmp_path, capsys, "is not a run folder", "--out", str(thesis))
    (tmp_path / "notes.txt").write_text("a file")
    assert_refused(tmp_path, capsys, "is a file, not a run folder", "--out", str(tmp_path / "notes.txt"))
    assert (thesis / "thesis.txt").read_text() == "four years of work"
    assert (tmp_path / "notes.txt").read_text() == "a file"


def test_an_impossible_out_fails_before_the_experiment(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert_refused(tmp_path, capsys, "is a file, not a folder", "--out", str(tmp_path / "file" / "run"))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seed", "-1"], "seed must be an integer from 0"),
        (["--seeds", "0,-1"], "seed must be an integer from 0"),
        (["--model-seed", "-3"], "model seed must be"),
        (["--epochs", "0"], "TrainConfig.epochs must be >= 1"),
        (["--epochs", "-2"], "TrainConfig.epochs must be >= 1"),
        (["--dr-sub-per-class", "0"], "UnsirConfig.dr_sub_per_class must be >= 1"),
        (["--set", "finetune.lr=-1", "--methods", "unsir,finetune"], "FinetuneConfig.lr must be > 0"),
        (["--set", "unsir.freeze_bn=maybe"], "expected true or false"),
        (["--metrics", "relearn,magic"], "unknown metric 'magic'"),
        (["--impair-lr", "nan"], "UnsirConfig.impair_lr must be a finite number"),
        (["--set", "finetune.lr=inf", "--methods", "unsir,finetune"], "FinetuneConfig.lr must be a finite number"),
        (["--set", "unsir.frozen_stages=6"], "frozen_stages must be between 1 and 5 for resnet18, got 6"),
        (["--device", "cpu", "--set", "unsir.precision=fp16"], "fp16 mixed precision needs a CUDA device"),
        (["--set", "unsir.repair_distill=1.5"], "UnsirConfig.repair_distill must be <= 1"),
        (["--recipe", "quick"], "invalid choice: 'quick'"),
        (["--image-size", "100000"], "image size must be between 8 and 512 pixels, got 100000"),
        (["--methods", ""], "no unlearning method given; name one or more of: unsir,"),
        (["--methods", " , "], "no unlearning method given"),
        (["--out", ""], "--out must name the run's folder, not ''"),
        (["--out", "."], "--out must name the run's folder, not '.'"),
    ],
)
def test_out_of_range_options_exit_2_before_any_training(tmp_path, capsys, extra, message):
    assert_refused(tmp_path, capsys, message, "--out", str(tmp_path / "run"), *extra)
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_negative_seed_or_no_epochs(tmp_path, capsys):
    for extra, message in ((["--seed", "-1"], "seed must be"), (["--epochs", "0"], "epochs must be >= 1")):
        with pytest.raises(SystemExit) as exit_info:
            run_cli("train", "--dataset", "digits", "--model", "resnet18", "--cache-dir", str(tmp_path / "c"), *extra)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "word, expected",
    [("false", False), ("False", False), ("0", False), ("no", False), ("true", True), ("YES", True), ("1", True)],
)
def test_boolean_options_parse_false_as_false(tmp_path, word, expected):
    from unsir_core.cli import build_parser

    args = build_parser().parse_args(
        ["experiment", "--dataset", "digits", "--model", "resnet18", "--forget", "3", "--out", "x", "--freeze-bn", word]
    )
    assert args.freeze_bn is expected


def test_freeze_bn_false_reaches_the_run(tmp_path):
    experiment(tmp_path, "--out", str(tmp_path / "run"), "--freeze-bn", "false")  # digits' default is true
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]["unsir"]["freeze_bn"] is False


def test_an_undecodable_image_is_named_in_a_clear_error(tmp_path, capsys):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "faces" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(tmp_path / "faces" / c / f"{i}.png")
    (tmp_path / "faces" / "b" / "notes.png").write_text("not an image")
    (tmp_path / "faces" / "b" / "a\nerror: forged.png").write_text("neither")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            "experiment",
            "--dataset",
            "imagefolder",
            "--data-dir",
            str(tmp_path / "faces"),
            "--model",
            "resnet18",
            "--forget",
            "a",
            "--out",
            str(tmp_path / "run"),
            *QUICK,
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "faces/b/a\\nerror: forged.png cannot be read as an image (UnidentifiedImageError), nor can 1 more" in err
    assert err.count("\n") == 1 and "Traceback" not in err  # the newline in a name forges no second line


def test_a_missing_cifar_data_dir_is_not_created(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit):
        run_cli(
            "experiment",
            "--dataset",
            "cifar10",
            "--model",
            "resnet18",
            "--forget",
            "3",
            "--data-dir",
            str(tmp_path / "no" / "such" / "dir"),
            "--out",
            str(tmp_path / "r"),
            *QUICK,
        )
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_metrics_all_writes_every_metric_for_every_model(tmp_path):
    from unsir_core.evaluation import _METRICS

    out = tmp_path / "run"
    run_cli(
        "experiment",
        "--dataset",
        "digits",
        "--model",
        "resnet18",
        "--forget",
        "4",
        "--methods",
        "unsir,unsir_no_noise,retrain,finetune,neggrad",
        "--metrics",
        "all",
        "--out",
        str(out),
        *QUICK,
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["metrics"] == list_metrics_names()
    keys = {metric.key for metric in _METRICS.values()}
    for name in ("original", "retrained", "unsir", "unsir_no_noise", "finetune", "neggrad"):
        assert keys <= set(m["models"][name]), (name, keys - set(m["models"][name]))
    assert m["models"]["retrained"]["tow"] == 1.0
    assert set(m["models"]["unsir"]["cka"]) == {"forget", "retain"}
    assert set(m["models"]["unsir"]["cka"]["forget"]) == {"original", "retrained"}
    assert set(m["config"]["method_configs"]) == {"unsir", "unsir_no_noise", "finetune", "neggrad"}
    assert m["config"]["method_configs"]["unsir_no_noise"]["noise"] == "none"


def list_metrics_names() -> list[str]:
    from unsir_core.evaluation import list_metrics

    return list_metrics()


def test_the_recipe_set_chooses_unsir_defaults_on_the_command_line():
    """--recipe fast gives UNSIR the fast models' defaults (digits would not show it: both sets
    train digits the same), and an explicit flag still wins; nothing is trained."""
    from unsir_core.cli import build_parser, experiment_config

    def unsir(*extra: str):
        argv = ["experiment", "--dataset", "cifar10", "--model", "resnet18", "--forget", "3", "--out", "x", *extra]
        return experiment_config(build_parser().parse_args(argv)).method_config("unsir")

    assert unsir().impair_lr == 0.015 and unsir("--recipe", "fast").impair_lr == 1e-3
    assert unsir("--recipe", "fast", "--impair-lr", "0.005").impair_lr == 0.005
    assert unsir("--recipe", "fast", "--preset", "official").impair_lr == 0.02  # the paper's, whatever the models
    assert unsir("--original", "mine.pt").calibrate  # a model of unknown recipe calibrates
    assert not unsir("--original", "mine.pt", "--preset", "tuned").calibrate  # unless a preset is chosen


def test_the_notebook_method_resolves_its_config():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
    import notebook  # noqa: F401  (registers unsir_notebook)

    from unsir_core.methods import method_config
    from unsir_core.unsir import UnsirConfig

    assert method_config("unsir_notebook", "cifar10", "resnet18", recipes="fast") == UnsirConfig.official()


# --- a model brought by the user (--original, --retrained) ----------------------------------


def _bad_checkpoints(tmp_path) -> dict[str, tuple[pathlib.Path, str]]:
    """Checkpoints that must be refused: (file, a phrase of the reason)."""
    import pickle

    from unsir_core.models import create_model

    other_arch = tmp_path / "allcnn.pt"
    torch.save(create_model("allcnn", 10).state_dict(), other_arch)
    other_count = tmp_path / "five_classes.pt"
    torch.save(create_model("resnet18", 5).state_dict(), other_count)
    diverged = tmp_path / "diverged.pt"
    state = create_model("resnet18", 10).state_dict()
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, diverged)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"w": print}))
    return {
        "architecture": (other_arch, "does not fit"),
        "class count": (other_count, "another shape"),
        "nan": (diverged, "NaN or infinite"),
        "pickle": (evil, "never unpickled"),
    }


def test_original_refuses_what_the_upload_refuses_with_the_same_message(tmp_path, capsys, digits):
    from ui.state import Settings
    from ui.uploads import save_upload
    from unsir_core.errors import CheckpointError

    settings = Settings("digits", None, "resnet18", "cpu", 0, None)
    for what, (path, reason) in _bad_checkpoints(tmp_path).items():
        out = tmp_path / f"run-{what.replace(' ', '_')}"
        with pytest.raises(SystemExit) as exit:
            run_cli("experiment", "--dataset", "digits", "--model", "resnet18", "--forget", "3",
                    "--original", str(path), "--out", str(out), *QUICK)  # fmt: skip
        assert exit.value.code == 2, what
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, what  # one error line (Streamlit's own log lines aside)
        cli = errors[0].removeprefix("error: ")
        assert reason in cli and not out.exists(), what
        with pytest.raises(CheckpointError) as refused:
            save_upload(str(path), path.read_bytes(), settings, digits)
        assert str(refused.value).replace(repr(str(path)), "FILE") == cli.replace(str(path), "FILE"), what


def test_original_and_retrained_are_used_and_recorded_with_their_hash(tmp_path, capsys):
    import hashlib

    from unsir_core import TrainConfig, create_model, fit, load_dataset, set_seed

    data = load_dataset("digits")
    set_seed(1)
    mine = create_model("resnet18", 10)
    recipe = TrainConfig(epochs=1, batch_size=64, lr=1e-3, grad_clip_value=None, scheduler="none")
    fit(mine, data.train, data.normalize, recipe, torch.device("cpu"))
    original = tmp_path / "mine.pt"
    torch.save(mine.state_dict(), original)  # a plain state_dict, as a user's own script saves it
    out = tmp_path / "run"
    run_cli("experiment", "--dataset", "digits", "--model", "resnet18", "--forget", "3", "--original", str(original),
            "--retrained", str(original), "--metrics", "accuracy", "--out", str(out), "--quiet")  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    assert metrics["models"]["original"]["checkpoint_sha256"] == digest
    assert metrics["models"]["retrained"]["checkpoint_sha256"] == digest  # the user's gold standard, not trained
    assert metrics["config"]["original_checkpoint"] == str(original) and not metrics["config"]["recipe_known"]
    assert metrics["config"]["presets"]["unsir"] == "calibrated"  # its recipe is unknown: UNSIR calibrates
    history = metrics["models"]["unsir"]["history"]
    assert any(h["phase"] == "calibration" and h.get("chosen") for h in history) or metrics["errors"]
    assert "calibration" in metrics["models"].get("unsir", {}).get("phases", {"calibration": 0})


def test_seed_statistics_pass_over_what_is_not_a_number():
    """An accuracy over no test image is NaN: the mean and spread of the others still come out."""
    from unsir_core.experiment import aggregate_seeds

    runs = [{"unsir": {"forget_acc": float("nan"), "retain_acc": 0.8, "seconds": None}},
            {"unsir": {"forget_acc": 0.0, "retain_acc": 0.9, "seconds": 2.0}}]  # fmt: skip
    merged = aggregate_seeds(runs)["unsir"]
    assert merged["retain_acc"] == pytest.approx(0.85) and merged["std"]["retain_acc"] == pytest.approx(0.05)
    assert merged["std"]["forget_acc"] == 0.0  # the one finite value

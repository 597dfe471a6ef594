"""The benchmark scripts run end to end on the embedded digits and their report reads back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cache: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "UNSIR_CACHE_DIR": str(cache), **(env or {})}  # own cache: other tests train theirs
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert not check or out.returncode == 0, out.stderr[-3000:]
    return out


def test_unlearning_benchmark_and_report(tmp_path):
    results = tmp_path / "results"
    out = results / "digits_resnet18.json"
    stdout = run(
        "-m",
        "bench.unlearning",
        "--dataset",
        "digits",
        "--forget",
        "3;2,8",
        "--seeds",
        "0,1",
        "--methods",
        "unsir,neggrad",
        "--set",
        "unsir.noise_steps=5",
        "--set",
        "unsir.repair_epochs=1",
        "--recipe",
        "epochs=3",
        "--retrain-epochs",
        "1",
        "--out",
        str(out),
        cache=tmp_path / "cache",
    ).stdout
    assert "speedup_vs_retrain" in stdout
    b = json.loads(out.read_text())
    assert b["recipe"]["epochs"] == 3  # --recipe changed the original's training (digits' recipe: 4)
    assert b["command"].startswith("python -m bench.unlearning --dataset digits")

    assert [s["forget"] for s in b["per_class"]] == [[3], [2, 8]]
    assert b["configs"]["unsir"]["noise_steps"] == 5 and b["configs"]["unsir"]["repair_epochs"] == 1
    timing = b["retrain"]["timing"]
    assert timing["scaled"] and timing["measured_epochs"] == 1
    assert timing["seconds"] == timing["measured_seconds"] * b["recipe"]["epochs"]
    for s in b["per_class"]:
        assert {r["method"] for r in s["runs"]} == {"unsir", "neggrad"} and len(s["runs"]) == 4
        assert s["unsir"]["forget_acc"] < s["original"]["forget_acc"]
        # the set with two forget classes has fewer retained samples, so a shorter retraining
    assert b["per_class"][1]["retrain"]["seconds"] < b["per_class"][0]["retrain"]["seconds"]

    unsir_runs = [r["seconds"] for s in b["per_class"] for r in s["runs"] if r["method"] == "unsir"]
    median = sorted(unsir_runs)[1:3]  # four runs: the median is the mean of the middle two
    assert abs(b["speedup_vs_retrain"] - b["retrain"]["seconds"] / (sum(median) / 2)) < 1e-6
    assert b["goals"]["worst_forget_acc"] == max(s["unsir"]["forget_acc"] for s in b["per_class"])
    forgets = [r["forget_acc"] for s in b["per_class"] for r in s["runs"] if r["method"] == "unsir"]
    assert b["goals"]["worst_run_forget_acc"] == max(forgets) and b["goals"]["unsir_runs"] == 4
    assert b["goals"]["runs_over_forget_goal"] == sum(f > 0.01 for f in forgets)
    drops = [s["original"]["retain_acc"] - s["unsir"]["retain_acc"] for s in b["per_class"]]
    assert b["goals"]["worst_retain_drop"] == max(drops)
    assert b["goals"]["retain_met"] == (max(drops) <= 0.02)  # every set, not the mean over sets
    unsir = [(s["original"]["retain_acc"], r) for s in b["per_class"] for r in s["runs"] if r["method"] == "unsir"]
    run_drops = [o - r["retain_acc"] for o, r in unsir]
    assert b["goals"]["worst_run_retain_drop"] == max(run_drops) >= max(drops)
    assert b["environment"]["git_commit"] is None or len(b["environment"]["git_commit"]) == 40

    baseline = results / "digits_resnet18_neggrad.json"  # a baseline alone: no UNSIR to compare speeds with
    run(
        "-m",
        "bench.unlearning",
        "--dataset",
        "digits",
        "--forget",
        "3",
        "--methods",
        "neggrad",
        "--recipe",
        "epochs=3",
        "--out",
        str(baseline),
        cache=tmp_path / "cache",
    )
    assert "speedup_vs_retrain" not in json.loads(baseline.read_text())

    median = {"open_seconds": 5.25, "click_to_comparison_seconds": 53.5, "job_seconds": 51.0}
    dashboard = {
        "command": "python -m bench.dashboard",
        "rows": [{}],
        "environment": b["environment"],
        "median": median,
    }
    (results / "dashboard.json").write_text(json.dumps(dashboard))  # bench/dashboard.py's shape (needs Chromium)
    run("-m", "bench.report", "--results", str(results), cache=tmp_path / "cache")
    readme = (results / "README.md").read_text()
    assert "## Dashboard" in readme and "| **opening to comparison** | **58.8** |" in readme
    assert "Sweep" not in readme  # a dashboard file is not taken for a sweep (both have "rows")
    before = {**median, "job_seconds": 102.0, "click_to_comparison_seconds": 107.0}
    compared = {**dashboard, "baseline": {"rev": "6069fc4", "rows": [{}], "median": before}}
    (results / "dashboard.json").write_text(json.dumps(compared))  # --baseline: before and after, one run
    run("-m", "bench.report", "--results", str(results), cache=tmp_path / "cache")
    readme = (results / "README.md").read_text()
    assert "the baseline `6069fc4` timed in the same run" in readme
    assert "| click Unlearn -> job finished | 102.0 | 51.0 | 2.00x |" in readme
    # 5.25 + 107 against 5.25 + 53.5
    assert "| **opening to comparison** | **112.2** | **58.8** | **1.91x** |" in readme
    assert f"{b['goals']['runs_over_forget_goal']} of 4 runs above the goal" in readme
    assert "### digits resnet18" in readme and "| unsir |" in readme and "| 2, 8 |" in readme
    assert (results / "plots" / "digits_resnet18.html").stat().st_size > 1000
    alone = readme[readme.index("(`digits_resnet18_neggrad.json`)") :]
    alone = alone[: alone.index("Per forget set")]
    assert "UNSIR preset" not in alone and "| neggrad |" in alone and alone.count("| - |") == 2


def test_sweep_varies_the_unlearning_seed_on_one_original(tmp_path):
    cache = tmp_path / "cache"
    for seed in ("1", "2"):
        out = tmp_path / f"sweep{seed}.json"
        run(
            "-m",
            "bench.sweep",
            "--dataset",
            "digits",
            "--classes",
            "3",
            "--seed",
            seed,
            "--grid",
            "noise_steps=2,4",
            "--grid",
            "repair_epochs=1",
            "--out",
            str(out),
            cache=cache,
        )
        s = json.loads(out.read_text())
        assert (s["seed"], s["model_seed"]) == (int(seed), 0) and len(s["rows"]) == 2
        assert [r["config"]["noise_steps"] for r in s["rows"]] == [2, 4]
    assert len(list(cache.rglob("digits-resnet18-original-*"))) == 1  # --seed is not the model's seed


def test_sweep_compares_named_points_over_seeds_with_retraining_timed(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "sweep_points.json"
    bad = run(
        "-m",
        "bench.sweep",
        "--dataset",
        "digits",
        "--point",
        "x:impair_lr",
        "--out",
        str(out),
        cache=cache,
        check=False,
    )
    assert bad.returncode != 0 and "'impair_lr': expected FIELD=VALUE" in bad.stderr
    assert not out.exists() and not list(cache.rglob("*.safetensors"))  # refused before any training
    points = ["tuned:", "cheap:noise_steps=2;repair_epochs=1", "official:preset=official;dr_sub_per_class=40"]
    run(
        "-m",
        "bench.sweep",
        *("--dataset", "digits", "--classes", "3", "--seeds", "0,1", "--time-retrain", "official,fast"),
        *(arg for point in points for arg in ("--point", point)),
        *("--out", str(out)),
        cache=cache,
    )
    s = json.loads(out.read_text())
    assert s["seeds"] == [0, 1] and [(r["label"], r["seed"]) for r in s["rows"]] == [
        (label, seed) for label in ("tuned", "cheap", "official") for seed in (0, 1)
    ]
    cheap, official = s["rows"][2]["config"], s["rows"][4]["config"]
    assert (cheap["noise_steps"], cheap["repair_epochs"]) == (2, 1)
    assert (official["noise_copies"], official["dr_sub_per_class"]) == (20, 40)  # the preset, then the change
    assert s["rows"][0]["seconds"] > 0 and s["rows"][0]["forget_acc"] <= s["rows"][0]["original_forget_acc"]
    # digits trains the same with both sets: one measured retraining (1 epoch, scaled) each
    assert set(s["retrain"]) == {"official", "fast"} and all(t["scaled"] for t in s["retrain"].values())
    out.write_text(json.dumps(s | {"caveats": ["timed beside other work"]}))  # added by hand after a run
    run("-m", "bench.report", "--results", str(tmp_path), cache=cache)
    readme = (tmp_path / "README.md").read_text()
    assert "seeds 0, 1" in readme and "speed-up vs official retraining" in readme
    assert "**Caveat:** timed beside other work" in readme
    assert "| cheap |" in readme and (tmp_path / "plots" / "sweep_points.html").exists()


def test_cifar100_script_says_what_is_missing_and_runs_nothing(tmp_path):
    offline = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}  # no download attempt
    out = run(
        "-m",
        "bench.cifar100",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "c100.json"),
        cache=tmp_path / "cache",
        env=offline,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error: cifar100 is not in") and "cifar-100-python.tar.gz" in out.stderr
    assert not (tmp_path / "c100.json").exists() and not (tmp_path / "cache").exists()


def test_audit_benchmark_pairs_unsir_with_its_noise_ablations(tmp_path):
    out = tmp_path / "audit.json"
    args = "--dataset digits --forget 3 --seeds 0,1 --methods unsir,unsir_no_noise --metrics mia,probe,cka,zrf,tow"
    quick = "--recipe fast --recipe epochs=2 --set unsir.noise_steps=5 --set unsir.repair_epochs=1"
    stdout = run(
        "-m",
        "bench.audit",
        *args.split(),
        *quick.split(),
        "--runs",
        str(tmp_path / "runs"),
        "--out",
        str(out),
        cache=tmp_path / "cache",
    ).stdout
    assert "unsir - no_noise" in stdout
    b = json.loads(out.read_text())
    assert b["command"].startswith("python -m bench.audit --dataset digits") and b["seeds"] == [0, 1]
    assert b["recipe"]["epochs"] == 2  # the fast set's digits recipe (the official one), then epochs=2
    assert set(b["models"]) == {"original", "retrained", "unsir", "unsir_no_noise"}
    assert b["models"]["retrained"]["tow"]["mean"] == 1.0 and b["models"]["unsir"]["probe_linear_forget"]["n"] == 2
    comparison = b["unsir_minus"]["unsir_no_noise"]
    diff = comparison["difference"]["retain_acc"]
    runs = {s["seed"]: s["models"] for s in b["per_class"][0]["per_seed"]}
    assert diff["mean"] == pytest.approx(
        sum(runs[s]["unsir"]["retain_acc"] - runs[s]["unsir_no_noise"]["retain_acc"] for s in (0, 1)) / 2
    )
    assert diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1] and 0 <= diff["p"] <= 1 and "significant" in diff
    assert set(comparison) == {"difference", "difference_by_class", "gap_to_retrained", "unsir_seed_sd"}
    assert comparison["difference_by_class"]["retain_acc"] is None  # one class: nothing to pair by class
    # every method's distance to the retrained model of the same run, and the closest per figure
    gap = sum(abs(runs[s]["unsir"]["retain_acc"] - runs[s]["retrained"]["retain_acc"]) for s in (0, 1)) / 2
    assert b["to_retrained"]["unsir"]["retain_acc"]["mean"] == pytest.approx(gap)
    assert set(b["to_retrained"]) == {"unsir", "unsir_no_noise"}  # not the original nor the reference itself
    forget_gaps = {n: b["to_retrained"][n]["forget_acc"]["mean"] for n in ("unsir", "unsir_no_noise")}
    tied = [n for n, g in forget_gaps.items() if g == min(forget_gaps.values())]  # both, when both forget to 0
    assert b["closest"]["forget_acc"]["methods"] == tied and "seconds" not in b["closest"]
    assert "significant" not in (comparison["difference"]["seconds"] or {})  # seconds: reported, not tested
    assert "unsir_random_noise" not in b["unsir_minus"] and b["method_configs"]["unsir_no_noise"]["noise_steps"] == 5
    assert [
        json.loads((tmp_path / "runs" / f"digits-resnet18-forget3-seed{s}" / "metrics.json").read_text())["config"][
            "seeds"
        ]
        for s in (0, 1)
    ] == [[0], [1]]
    assert [s["seed"] for s in b["per_class"][0]["per_seed"]] == [0, 1]
    assert b["per_class"][0]["seconds"] == pytest.approx(sum(s["seconds"] for s in b["per_class"][0]["per_seed"]))
    # --resume keeps the (class, seed) runs the file holds, runs the others, and refuses other settings;
    # a class interrupted after its first seed goes on from its second
    first = json.loads(out.read_text())
    interrupted = json.loads(out.read_text())
    interrupted["per_class"][0]["per_seed"] = interrupted["per_class"][0]["per_seed"][:1]
    interrupted["caveats"] = ["seed 0 was timed beside another job"]  # written by hand; kept by --resume
    out.write_text(json.dumps(interrupted))
    resume = ["-m", "bench.audit", *args.split(), *quick.split(), "--out", str(out), "--resume"]
    refused = run(*[a if a != "0,1" else "0,2" for a in resume], cache=tmp_path / "cache", check=False)
    assert refused.returncode != 0 and "was made with seeds [0, 1], not [0, 2]" in refused.stderr
    other_lr = run(*resume, "--set", "unsir.impair_lr=0.002", cache=tmp_path / "cache", check=False)
    assert other_lr.returncode != 0 and "with unsir.impair_lr 0.0005, not 0.002" in other_lr.stderr  # not averaged
    assert b["recipes"] == "fast"
    # a new seed is measured against the kept seeds' original and retrained models, or refused
    tampered = json.loads(json.dumps(interrupted))
    kept_hash = tampered["per_class"][0]["per_seed"][0]["references"]["original"]
    tampered["per_class"][0]["per_seed"][0]["references"]["original"] = "0" * 64
    out.write_text(json.dumps(tampered))
    other_model = run(*resume, cache=tmp_path / "cache", check=False)
    assert other_model.returncode != 0
    assert f"--resume: 3 seed 1: the original model's weights (sha256 {kept_hash[:12]})" in other_model.stderr
    assert json.loads(out.read_text()) == tampered  # nothing written
    out.write_text(json.dumps(interrupted))
    # an emptied cache retrains the same models (deterministic training), so the file goes on
    stdout = run(*[a if a != "3" else "3,4" for a in resume], cache=tmp_path / "fresh_cache").stdout
    assert "forget 3: seeds [0] kept from" in stdout and "running [1]" in stdout
    b = json.loads(out.read_text())
    assert [c["forget"] for c in b["per_class"]] == [[3], [4]] and b["earlier_commands"] == [first["command"]]
    assert b["caveats"] == interrupted["caveats"]
    assert [s["seed"] for s in b["per_class"][0]["per_seed"]] == [0, 1]
    assert b["per_class"][0]["per_seed"][0] == first["per_class"][0]["per_seed"][0]
    assert all(c["git_commit"] == first["environment"]["git_commit"] for c in b["per_class"])
    assert b["unsir_minus"]["unsir_no_noise"]["difference_by_class"]["retain_acc"]["n"] == 2
    before = json.loads(out.read_text())
    run("-m", "bench.audit", "--summarise", str(out), cache=tmp_path / "cache")
    again = json.loads(out.read_text())
    assert again.pop("summarised_by")["command"].startswith("python -m bench.audit --summarise")
    assert again == before  # the same statistics from the same per-class figures
    # --redo measures one method again on every kept run (after a fix) and leaves the others' figures
    wrong = run(*resume, "--redo", "neggrad", cache=tmp_path / "cache", check=False)
    assert wrong.returncode != 0 and "--redo: neggrad not in --methods" in wrong.stderr
    run(*resume, "--redo", "unsir_no_noise", cache=tmp_path / "cache")
    redone = json.loads(out.read_text())
    for old_class, new_class in zip(again["per_class"], redone["per_class"], strict=True):
        for old_run, new_run in zip(old_class["per_seed"], new_class["per_seed"], strict=True):
            assert new_run["redone"] == {"unsir_no_noise": redone["environment"]["git_commit"]}
            assert {k: v for k, v in new_run["models"].items() if k != "unsir_no_noise"} == {
                k: v for k, v in old_run["models"].items() if k != "unsir_no_noise"
            }
            assert (
                new_run["models"]["unsir_no_noise"]["forget_acc"] == old_run["models"]["unsir_no_noise"]["forget_acc"]
            )
    assert list(redone["per_class"][0]["per_seed"][0]["models"]) == list(again["per_class"][0]["per_seed"][0]["models"])
    run("-m", "bench.report", "--results", str(tmp_path), cache=tmp_path / "cache")
    readme = (tmp_path / "README.md").read_text()
    assert "### Audit: digits resnet18" in readme and "UNSIR minus `unsir_no_noise`" in readme
    assert "Distance to the retrained model" in readme and "| unsir_no_noise |" in readme
    row = next(line for line in readme.splitlines() if line.startswith("| retrained |"))
    assert "1.000 ± 0.000" in row  # ToW of the retrained model against itself


def test_recipes_benchmark_times_each_set_and_the_report_tabulates_it(tmp_path):
    out = tmp_path / "recipes.json"
    args = "--dataset digits --recipes fast,official --timing-epochs official=1 --out"
    stdout = run("-m", "bench.recipes", *args.split(), str(out), cache=tmp_path / "cache").stdout
    assert "official" in stdout and "(scaled)" in stdout
    r = json.loads(out.read_text())
    fast, official = r["rows"]
    assert fast["recipes"] == "fast" and not fast["scaled"] and 0.5 < fast["test_accuracy"] <= 1
    assert fast["epochs"] == fast["recipe"]["epochs"] == 3 and fast["cached"] is False
    assert official["scaled"] and official["measured_epochs"] == 1 and official["test_accuracy"] is None
    run("-m", "bench.report", "--results", str(tmp_path), cache=tmp_path / "cache")
    readme = (tmp_path / "README.md").read_text()
    assert "### Training recipes (`recipes.json`)" in readme and "(scaled from 1)" in readme


def test_distributed_benchmark_trains_in_one_and_two_processes_under_one_key(tmp_path):
    out = tmp_path / "distributed.json"
    args = "--dataset digits --model resnet18 --epochs 1 --processes 1,2 --out"
    stdout = run("-m", "bench.distributed", *args.split(), str(out), cache=tmp_path / "cache").stdout
    r = json.loads(out.read_text())
    assert [(row["processes"], row["world_size"]) for row in r["rows"]] == [(1, 1), (2, 2)]
    assert r["same_checkpoint_name"] and r["rows"][0]["checkpoint"].startswith("digits-resnet18-original-")
    assert all(0 < row["train_seconds"] < row["wall_seconds"] for row in r["rows"])
    assert r["speedup_vs_first"]["1"] == 1.0 and "2" in r["median"] and r["rows"][0]["checkpoint"] in stdout
    assert not list((tmp_path / "cache").rglob("*.safetensors"))  # throwaway caches, never the user's
    run("-m", "bench.report", "--results", str(tmp_path), cache=tmp_path / "cache")
    readme = (tmp_path / "README.md").read_text()
    assert "## Training on several processes (torchrun)" in readme and "| 2 |" in readme


def test_recipes_benchmark_trains_variants_over_seeds(tmp_path):
    out = tmp_path / "variants.json"
    args = "--dataset digits --recipes official --timing-epochs official=1 --variant 1ep:epochs=1;lr=0.002"
    run("-m", "bench.recipes", *args.split(), "--seeds", "0,1", "--out", str(out), cache=tmp_path / "cache")
    r = json.loads(out.read_text())
    assert [(row["recipes"], row["seed"]) for row in r["rows"]] == [
        ("official", 0),
        ("1ep", 0),
        ("official", 1),
        ("1ep", 1),
    ]
    one = [row for row in r["rows"] if row["recipes"] == "1ep"]
    assert all(row["recipe"]["epochs"] == 1 and row["recipe"]["lr"] == 0.002 for row in one)  # the change, typed
    assert one[0]["recipe"]["batch_size"] == r["rows"][0]["recipe"]["batch_size"]  # on the first set's recipe
    assert one[0]["checkpoint"] != one[1]["checkpoint"]  # a model per seed
    run("-m", "bench.report", "--results", str(tmp_path), cache=tmp_path / "cache")
    readme = (tmp_path / "README.md").read_text()
    mean = 100 * sum(row["test_accuracy"] for row in one) / 2
    low = 100 * min(row["test_accuracy"] for row in one)
    assert f"| {mean:.2f} ({low:.2f}) |" in readme and "model seed(s) 0, 1" in readme


def test_recipe_argument_names_a_set_and_changes_fields(monkeypatch):
    from bench.common import recipe_from
    from unsir_core.errors import InvalidConfigError
    from unsir_core.recipes import default_recipe

    assert recipe_from("cifar10", "resnet18", []) == default_recipe("cifar10", "resnet18")
    fast = recipe_from("cifar10", "resnet18", ["fast", "epochs=3"])
    assert fast.scheduler == "onecycle" and fast.epochs == 3
    with pytest.raises(InvalidConfigError, match="names one recipe set, got fast, official"):
        recipe_from("cifar10", "resnet18", ["fast", "official"])
    with pytest.raises(InvalidConfigError, match="unknown recipe set 'quick'"):
        recipe_from("cifar10", "resnet18", ["quick"])


def test_the_audit_knows_a_reference_model_by_its_weights_not_its_figures(monkeypatch):
    from bench.audit import same_references
    from unsir_core.errors import UnsirError

    def run(original_hash: str, retain_acc: float, hashes: bool = True) -> dict:
        models = {"original": {"forget_acc": 0.7, "retain_acc": retain_acc}, "retrained": {"retain_acc": 0.81}}
        return {"models": models, "references": {"original": original_hash, "retrained": "b" * 64} if hashes else {}}

    kept = run("a" * 64, 0.8176666)
    # evaluated again on CUDA, the same weights may give one image in 9,000 more or less
    same_references(kept, run("a" * 64, 0.8176666 - 1 / 9000), "--resume")
    with pytest.raises(UnsirError, match=r"the original model's weights \(sha256 cccccccccccc\) are not those"):
        same_references(kept, run("c" * 64, 0.8176666), "--resume")
    # a run recorded before the hashes were is still compared on its figures, exactly
    same_references(run("", 0.8176666, hashes=False), run("a" * 64, 0.8176666), "--resume")
    with pytest.raises(UnsirError, match="the original model gives retain_acc"):
        same_references(run("", 0.8176666, hashes=False), run("a" * 64, 0.8175555), "--resume")


def test_weights_hash_names_the_weights_not_the_object():
    from unsir_core.checkpoints import weights_sha256
    from unsir_core.models import create_model

    a, b = create_model("allcnn", 10, image_size=8), create_model("allcnn", 10, image_size=8)
    b.load_state_dict(a.state_dict())
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        next(b.parameters()).view(-1)[0] += 1e-6
    assert weights_sha256(a) != weights_sha256(b)


def test_the_report_leaves_out_audit_figures_no_model_has(monkeypatch):
    from bench import report

    one = {"mean": 0.5, "std": 0.0}
    a = {"models": {"original": {"forget_acc": one, "mia_worst": None}, "unsir": {"forget_acc": one, "tow": one}}}
    keys = [c.key for c in report.measured_figures(a)]
    assert keys == ["forget_acc", "tow"]


def test_the_report_names_a_forget_class_whose_seeds_are_not_all_run(monkeypatch):
    from bench import report

    runs = [{"seed": s} for s in (0, 1, 2)]
    a = {"seeds": [0, 1, 2], "per_class": [{"forget_names": ["cat"], "per_seed": runs}]}
    a["per_class"].append({"forget_names": ["dog"], "per_seed": runs[:1]})
    assert report.forget_sets(a) == "cat, dog (seeds [0] so far)"


def test_the_zoo_reuses_an_original_only_with_the_recipe_and_time_it_was_trained_with(tmp_path, monkeypatch):
    from bench import zoo
    from unsir_core.datasets import load_dataset
    from unsir_core.models import create_model

    data = load_dataset("digits")
    trained = []

    def fake_training(entry, seed, data, device):
        trained.append(entry.recipe)
        return create_model(entry.model, data.num_classes), 12.5

    monkeypatch.setattr(zoo, "train_outside", fake_training)
    entry = zoo.Entry("toy", "digits", "allcnn", zoo.Recipe("adam", 1e-3, 1), (1,))
    path = tmp_path / "toy-seed0.pt"
    first, seconds, reused = zoo.original(entry, 0, data, torch.device("cpu"), path, reuse=True)
    assert (seconds, reused, len(trained)) == (12.5, False, 1) and path.exists()
    again, seconds, reused = zoo.original(entry, 0, data, torch.device("cpu"), path, reuse=True)
    assert (seconds, reused, len(trained)) == (12.5, True, 1)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True))
    other = zoo.Entry("toy", "digits", "allcnn", zoo.Recipe("adam", 1e-3, 2), (1,))  # another recipe: trained anew
    assert zoo.original(other, 0, data, torch.device("cpu"), path, reuse=True)[2] is False and len(trained) == 2
    assert zoo.original(other, 0, data, torch.device("cpu"), path, reuse=False)[2] is False and len(trained) == 3

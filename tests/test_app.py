"""Every dashboard page with Streamlit's AppTest: rendering, bad input, and the whole flow
(pick a class, unlearn in the background, inspect, compare, export)."""

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from unsir_core.checkpoints import save_checkpoint
from unsir_core.errors import CheckpointError
from unsir_core.models import create_model

from .conftest import make_run_with_every_metric

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["views/models.py", "views/unlearn.py", "views/inspect_models.py", "views/runs.py"]


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSIR_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def app(page: str = PAGES[0]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_offline_and_shows_the_device(page):
    at = app(page)
    assert "device **cpu**" in texts(at.caption)
    assert at.title[0].value in {"Models", "Unlearn", "Inspect", "Runs"}
    assert at.expander[0].label == "What am I looking at?"  # the teaching panel


def test_models_page_offers_training_when_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSIR_CACHE_DIR", str(tmp_path / "empty-cache"))
    at = app()
    assert "No resnet18 trained with the official recipe for digits" in texts(at.info)
    assert any(b.label == "Train the original model" for b in at.button)
    assert [m.value for m in at.metric] == ["10", "1438", "359"]


def test_unlearn_without_a_class_says_so():
    at = app("views/unlearn.py")
    at.multiselect[0].set_value([]).run()
    at.button[0].click().run()
    assert not at.exception
    assert "no forget class" in texts(at.error)


def test_unlearn_with_every_class_says_so():
    at = app("views/unlearn.py")
    at.multiselect[0].set_value(list(at.multiselect[0].options)).run()
    at.button[0].click().run()
    assert "at least one class must be retained" in texts(at.error)


def test_unlearn_without_a_method_says_so():
    at = app("views/unlearn.py")
    at.multiselect[1].set_value([]).run()
    at.button[0].click().run()
    assert "choose at least one method" in texts(at.error)


def test_the_sidebar_holds_the_shared_settings():
    at = app()
    assert [w.key for w in at.sidebar.selectbox] == ["dataset", "model", "device", "recipes"]
    assert at.sidebar.selectbox[3].value == "official"  # UNSIR's defaults were tuned on its models
    # a data set whose files are not here (the tests' data directory is empty) is marked
    labels = at.sidebar.selectbox[0].options
    assert "digits" in labels and "cifar100 (download)" in labels and "imagefolder" in labels
    assert "Device in use: **cpu**" in texts(at.sidebar.markdown)


def test_imagefolder_asks_for_a_path_and_reports_a_missing_folder(tmp_path):
    # (AppTest drops the sidebar of st.navigation apps on reruns, so the settings are set
    # through their session-state keys; the browser test drives the real widgets)
    at = app()
    at.session_state["dataset"] = "imagefolder"
    at.run()
    assert "Enter the path of an ImageFolder" in texts(at.info)
    at.session_state["imagefolder_path"] = str(tmp_path / "nowhere")
    at.run()
    assert not at.exception
    assert "cannot be loaded" in texts(at.error)


@pytest.mark.parametrize("page", ["views/inspect_models.py", "views/runs.py"])
def test_pages_without_runs_say_so(page):
    assert "No runs yet" in texts(app(page).info)


def test_a_corrupt_run_directory_is_skipped(runs_dir):
    (runs_dir / "broken").mkdir(parents=True)
    (runs_dir / "broken" / "metrics.json").write_text("{not json")
    at = app("views/runs.py")
    assert "No runs yet" in texts(at.info)


def test_uploaded_checkpoints_are_checked_before_use(tmp_path, digits):
    from ui.state import Settings
    from ui.uploads import save_upload

    s = Settings("digits", None, "resnet18", "cpu", 0, None)
    good = tmp_path / "good.safetensors"
    save_checkpoint(create_model("resnet18", 10), good, {"model": "resnet18", "num_classes": 10})
    saved = save_upload("good.safetensors", good.read_bytes(), s, digits)
    assert saved.exists() and saved.suffix == ".safetensors"
    other = tmp_path / "other.pt"
    torch.save(create_model("allcnn", 10).state_dict(), other)
    with pytest.raises(CheckpointError, match="does not fit"):
        save_upload("other.pt", other.read_bytes(), s, digits)
    with pytest.raises(CheckpointError):
        save_upload("junk.safetensors", b"not a checkpoint", s, digits)


def test_the_calibration_chart_shows_the_trials_the_choice_and_the_top_up():
    from ui.charts import calibration_figure

    history = [
        {"phase": "calibration_setup", "original_retain_acc": 0.99},
        {"phase": "calibration", "impair_lr": 3e-3, "retain_acc": 0.97, "signal": 0.0, "chosen": True},
        {"phase": "calibration", "impair_lr": 1e-3, "retain_acc": 0.99, "signal": 0.3, "chosen": False},
        {"phase": "calibration_top_up", "top_up_epochs": 8, "retain_acc": 0.98, "signal": 0.0, "taken": True},
    ]
    fig = calibration_figure(history)
    assert list(fig.data[0].x) == [1e-3, 3e-3]  # gentlest first
    star = fig.data[-1]
    assert list(star.x) == [3e-3] and list(star.y) == [0.98] and star.name == "after 8 more repair epoch(s), kept"
    assert len(calibration_figure(history[:3]).data) == 2  # no top-up, no star


def test_the_summary_table_shows_each_figure_at_its_own_precision():
    from ui.charts import summary_table, summary_text

    models = {
        "original": {"forget_acc": 0.97297, "retain_acc": 0.9783, "seconds": 13.2754, "relearn": {"steps": 0}},
        "unsir": {"forget_acc": 0.0, "seconds": 15.66, "relearn": {"steps": 10}, "zero_glance": True},
    }
    text = summary_text(summary_table(models))
    assert text.loc["original", "forget acc (test)"] == "0.9730"
    assert text.loc["unsir", "retain acc (test)"] == "-"  # not measured
    assert list(text["relearn steps"]) == ["0", "10"] and list(text["seconds"]) == ["13.3", "15.7"]
    assert list(text["zero-glance"]) == ["-", "yes"]


def test_the_whole_flow_unlearn_inspect_compare_export(runs_dir):
    """Class 3 with UNSIR and the default metrics: the job runs in the background queue, the
    Inspect page shows the numbers, both charts and the GradCAM grid, the Runs page exports."""
    from ui.job_panel import job_queue

    at = app("views/unlearn.py")
    assert at.multiselect[0].value == ["3: 3"] and at.multiselect[1].value == ["unsir"]
    at.button[0].click().run()
    assert not at.exception
    jobs = job_queue().jobs()
    job = job_queue().wait(jobs[-1], timeout=600)
    assert job.state == "done", job.error
    assert {"original", "retrain", "noise", "impair", "repair"} <= set(job.phases)
    run = Path(job.result)
    assert run.parent == runs_dir and (run / "metrics.json").exists() and (run / "unsir.safetensors").exists()

    at.run()
    assert "Finished" in texts(at.success)
    at.session_state["last_run"] = str(run)
    at.switch_page("views/inspect_models.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert {"original", "retrained", "unsir"} <= set(table.index)
    assert float(table.loc["unsir", "forget acc (test)"]) < 0.2
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # per-layer distance and prediction distribution
    figures = {f["layout"]["title"]["text"]: f for f in (json.loads(c.proto.spec) for c in charts)}
    distance = figures["Per-layer L2 distance to the original model"]
    assert distance["layout"]["yaxis"]["type"] == "log"
    assert {t["name"] for t in distance["data"]} == {"unsir", "retrained"}
    predictions = figures["What the models predict for forget-class test images"]
    assert {t["name"] for t in predictions["data"]} == {"original", "unsir", "retrained"}
    images = at.get("image")
    assert len(images) == 2 * 4 * 4  # two groups x (image + three models) x four images

    at.switch_page("views/runs.py").run()
    assert not at.exception, at.exception
    assert run.name in set(at.dataframe[0].value["run"])
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    # headline metrics per run, per-layer distance, and the audit scores (the default metrics
    # include the membership attack, so its worst member rate is there to compare)
    assert len(charts) == 3
    assert charts[1]["layout"]["yaxis"]["type"] == "log"
    assert "MIA worst member rate" in json.dumps(charts[2])
    from ui.audit_report import build_report
    from unsir_core.runs import read_run

    report = build_report(read_run(run))
    assert report.startswith("<!doctype html>") and "plotly" in report and "git_commit" in report


def test_views_holds_only_the_page_scripts_of_the_navigation():
    from ui.layout import PAGES as NAVIGATION

    root = Path(APP).parent
    # pages/ would be discovered by Streamlit on its own, beside the navigation app.py declares
    assert not (root / "pages").exists()
    scripts = sorted(p.name for p in (root / "views").iterdir() if p.name != "__pycache__")
    assert scripts == sorted(Path(p.path).name for p in NAVIGATION)
    assert [p.path for p in NAVIGATION] == PAGES  # the pages this file tests are the navigation's


def test_upload_errors_name_the_users_file_not_the_server(tmp_path, digits):
    import pickle

    from ui.state import Settings
    from ui.uploads import save_upload, uploads_dir

    s = Settings("digits", None, "resnet18", "cpu", 0, None)
    model = create_model("resnet18", 10)
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    diverged = tmp_path / "diverged.safetensors"
    save_checkpoint(model, diverged, {"model": "resnet18", "num_classes": 10})
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"w": print}))
    before = set(uploads_dir().glob("*"))
    for name, path, reason in (("mine.safetensors", diverged, "NaN or infinite"), ("evil.pt", evil, "never unpickled")):
        with pytest.raises(CheckpointError) as err:
            save_upload(name, path.read_bytes(), s, digits)
        message = str(err.value)
        assert reason in message and repr(name) in message
        assert str(uploads_dir()) not in message and "weights_only" not in message
    assert set(uploads_dir().glob("*")) == before, "a refused upload leaves nothing behind"


def test_the_image_folder_box_reads_only_folders_inside_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSIR_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "empty").mkdir(parents=True)
    (tmp_path / "secret" / "keys").mkdir(parents=True)
    at = app()
    at.session_state["dataset"] = "imagefolder"
    for name, reason in (
        ("../secret", "is not inside the data directory"),
        (str(tmp_path / "secret"), "is not inside the data directory"),
        ("/", "is not inside the data directory"),
        ("a\x00b", "not a valid folder name"),
        ("x" * 5000, "no image folder"),
    ):
        at.session_state["imagefolder_path"] = name
        at.run()
        assert not at.exception
        message = texts(at.error)
        assert reason in message
        assert "keys" not in message and "etc" not in message and str(tmp_path / "data") not in message
    at.session_state["imagefolder_path"] = "empty"
    at.run()
    assert "holds no class sub-folder with images" in texts(at.error)


@pytest.mark.parametrize("page", ["views/runs.py", "views/inspect_models.py"])
def test_a_run_with_a_malformed_metrics_json_is_skipped_by_the_pages(runs_dir, page):
    from unsir_core.runs import atomic_run_dir, write_json

    good = {
        "config": {"dataset": "digits", "model": "resnet18", "methods": ["unsir"], "seeds": [0], "seed": 0},
        "forget_classes": [3],
        "class_names": [str(i) for i in range(10)],
        "finished_at": "2026-01-01T00:00:00",
        "models": {"original": {"forget_acc": 0.9, "retain_acc": 0.9}, "unsir": {"forget_acc": 0.0}},
    }
    with atomic_run_dir(runs_dir / "good") as d:
        write_json(d / "metrics.json", good)
    for name, finished in (("null", None), ("number", 5)):
        (runs_dir / name).mkdir()
        (runs_dir / name / "metrics.json").write_text(json.dumps({**good, "finished_at": finished}))
    at = app(page)
    assert not at.exception, at.exception
    assert "No runs yet" not in texts(at.info)


def test_the_sidebar_settings_survive_a_page_switch():
    # app.py draws the sidebar's widgets on every run, before the page: their values stay
    at = app()
    at.sidebar.number_input[0].set_value(3).run()
    at.sidebar.selectbox[1].set_value("allcnn").run()
    at.sidebar.selectbox[3].set_value("fast").run()
    for page in PAGES[1:] + PAGES[:1]:
        at.switch_page(page).run()
        assert not at.exception, at.exception
        caption = texts(at.caption)
        assert "resnet18" not in caption and "allcnn · seed 3 · fast recipe" in caption, page


def test_inspect_shows_inside_the_model_and_runs_and_report_compare_it(runs_dir):
    run = make_run_with_every_metric(runs_dir)
    at = app("views/inspect_models.py")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert {"probe forget acc (linear)", "ToW", "ZRF", "MIA worst member rate"} <= set(table.columns)
    assert table.loc["retrained", "ToW"] == "1.0000"
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    for expected in (
        "Per-layer L2 distance",
        "What the models predict",
        "still decodable",
        "Representation similarity",
        "Penultimate features",
        "Confusion matrices",
    ):
        assert any(expected in t for t in titles), (expected, titles)
    assert "hidden, not erased" in texts(at.caption)

    at.switch_page("views/runs.py").run()
    assert not at.exception, at.exception
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    audit = next(t for t in titles if t.startswith("Audit figures per run"))
    assert all(label in audit for label in ("probe forget acc (linear)", "ToW", "ZRF", "MIA worst member rate"))
    from ui.audit_report import build_report
    from unsir_core.runs import read_run

    report = build_report(read_run(run))
    assert "still decodable" in report and "Confusion matrices" in report and "ToW" in report


def test_the_noise_question_runs_unsir_and_its_ablations_in_one_job():
    at = app("views/unlearn.py")
    at.checkbox[0].check().run()
    assert not at.exception
    expanders = [e.label for e in at.expander]
    assert "unsir hyper-parameters" in expanders and not any("noise hyper" in e for e in expanders)
    from ui.job_panel import job_queue

    before = len(job_queue().jobs())
    at.button[0].click().run()
    job = job_queue().jobs()[before]
    assert "unsir, unsir_random_noise, unsir_no_noise" in job.label
    job_queue().cancel(job.id)


def test_a_preset_chosen_on_the_unlearn_page_is_what_the_job_runs(monkeypatch):
    import ui.job_panel
    from unsir_core.unsir_method import FAST_CHANGES

    submitted = []
    monkeypatch.setattr(ui.job_panel, "submit_experiment", lambda cfg, label: submitted.append(cfg))
    at = app("views/unlearn.py")
    preset = next(w for w in at.selectbox if w.label == "Preset")
    assert preset.options == ["tuned", "fast", "official", "calibrated"] and preset.value == "tuned"
    preset.set_value("fast").run()
    assert not at.exception
    shown = {w.label: w.value for w in at.number_input}
    assert (
        (shown["noise_steps"], shown["dr_sub_per_class"])
        == (10, 500)
        == (  # the preset's, not tuned's
            FAST_CHANGES["noise_steps"],
            FAST_CHANGES["dr_sub_per_class"],
        )
    )
    next(w for w in at.number_input if w.label == "impair_lr").set_value(0.0007).run()  # a change on top
    at.checkbox[0].check().run()  # and the noise ablations, which take UNSIR's config
    at.button[0].click().run()
    assert not at.exception and len(submitted) == 1
    for name in ("unsir", "unsir_random_noise"):
        cfg = submitted[0].method_config(name)
        assert (cfg.noise_steps, cfg.dr_sub_per_class, cfg.impair_lr) == (10, 500, 0.0007)


def test_an_uploaded_model_is_calibrated_by_default(tmp_path):
    """An upload's recipe is unknown: the Unlearn page starts UNSIR from the calibrated preset."""
    from ui.state import Keys

    at = app("views/unlearn.py")
    at.session_state[Keys.UPLOADED] = {"path": str(tmp_path / "mine.pt"), "for": ("digits", None, "resnet18")}
    at.run()
    assert not at.exception
    assert next(w for w in at.selectbox if w.label == "Preset").value == "calibrated"
    assert any("Calibrated for this model" in c.value for c in at.caption)

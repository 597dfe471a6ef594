import json

import pytest

from unsir_core.runs import atomic_run_dir, list_runs, read_run, write_json


def _metrics(name="a"):
    return {"config": {"dataset": "digits", "model": "resnet18", "methods": ["unsir"], "seeds": [0]},
            "forget_classes": [3], "finished_at": f"2026-01-01T00:00:0{len(name)}",
            "models": {"unsir": {"forget_acc": 0.0, "retain_acc": 0.9, "seconds": 1.0}}}  # fmt: skip


def test_a_complete_run_appears_and_a_crashed_one_does_not(tmp_path):
    with atomic_run_dir(tmp_path / "good") as d:
        write_json(d / "metrics.json", _metrics())
    with pytest.raises(RuntimeError), atomic_run_dir(tmp_path / "crashed") as d:
        write_json(d / "metrics.json", _metrics())
        raise RuntimeError("cancelled")
    assert [p.name for p in tmp_path.iterdir()] == ["good"]
    [run] = list_runs(tmp_path)
    assert run.forget_classes == [3] and run.headline["unsir"]["retain_acc"] == 0.9


def test_rewriting_a_run_replaces_it_whole(tmp_path):
    for value in (0.5, 0.7):
        with atomic_run_dir(tmp_path / "r") as d:
            m = _metrics()
            m["models"]["unsir"]["retain_acc"] = value
            write_json(d / "metrics.json", m)
    assert read_run(tmp_path / "r")["models"]["unsir"]["retain_acc"] == 0.7
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_corrupt_runs_are_skipped_with_a_warning(tmp_path):
    with atomic_run_dir(tmp_path / "ok") as d:
        write_json(d / "metrics.json", _metrics())
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    (tmp_path / "empty").mkdir()
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "metrics.json").write_text(json.dumps({"config": {}}))
    with pytest.warns(UserWarning, match="skipping run"):
        runs = list_runs(tmp_path)
    assert [r.path.name for r in runs] == ["ok"]
    assert list_runs(tmp_path / "missing") == []

import json

import pytest

from unsir_core.runs import atomic_run_dir, list_runs, read_run, write_json


def _metrics(name="a"):
    return {
        "config": {"dataset": "digits", "model": "resnet18", "methods": ["unsir"], "seeds": [0]},
        "forget_classes": [3],
        "finished_at": f"2026-01-01T00:00:0{len(name)}",
        "models": {"unsir": {"forget_acc": 0.0, "retain_acc": 0.9, "seconds": 1.0}},
    }


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
    with pytest.warns(UserWarning, match="skipping run") as warned:
        runs = list_runs(tmp_path)
    assert [r.path.name for r in runs] == ["ok"]
    messages = {str(w.message).removeprefix("skipping ") for w in warned}
    assert "run empty is unreadable: it holds no metrics.json" in messages
    assert not any(str(tmp_path) in str(w.message) for w in warned)  # no server path shown
    assert list_runs(tmp_path / "missing") == []


# --- a run folder only replaces a run folder ------------------------------------------------


def test_a_folder_that_is_not_a_run_is_never_replaced(tmp_path):
    from unsir_core.errors import UnsirError

    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("four years of work")
    (tmp_path / "notes.txt").write_text("a file")
    for target in (thesis, tmp_path / "notes.txt"):
        with pytest.raises(UnsirError, match="not a run folder"), atomic_run_dir(target) as d:
            write_json(d / "metrics.json", _metrics())
    assert (thesis / "thesis.txt").read_text() == "four years of work"
    assert (tmp_path / "notes.txt").read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "thesis"]  # no leftovers


def test_a_folder_with_another_tools_metrics_json_is_not_a_run(tmp_path):
    from unsir_core.errors import UnsirError

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics.json").write_text('{"accuracy": 0.93}')
    with pytest.raises(UnsirError, match="not a run folder"), atomic_run_dir(tmp_path / "results") as d:
        write_json(d / "metrics.json", _metrics())
    assert json.loads((tmp_path / "results" / "metrics.json").read_text()) == {"accuracy": 0.93}


def test_an_empty_folder_or_an_earlier_run_may_be_replaced(tmp_path):
    (tmp_path / "empty").mkdir()
    for target in ("empty", "empty"):  # the second time it is a run
        with atomic_run_dir(tmp_path / target) as d:
            write_json(d / "metrics.json", _metrics())
            (d / "unsir.safetensors").write_bytes(b"weights")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["metrics.json", "unsir.safetensors"]


def test_a_run_never_deletes_a_file_it_did_not_write(tmp_path):
    from unsir_core.errors import UnsirError

    with atomic_run_dir(tmp_path / "r") as d:
        write_json(d / "metrics.json", _metrics())
        (d / "unsir.safetensors").write_bytes(b"weights")
    (tmp_path / "r" / "my_finetuned.safetensors").write_bytes(b"the user's own model")
    with pytest.raises(UnsirError, match="holds a run and 1 file.* did not write .*my_finetuned"):
        with atomic_run_dir(tmp_path / "r") as d:
            write_json(d / "metrics.json", _metrics())
    assert (tmp_path / "r" / "my_finetuned.safetensors").read_bytes() == b"the user's own model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


@pytest.mark.parametrize("out", ["", ".", "..", "runs/.."])
def test_an_out_that_names_no_folder_is_refused_before_any_work(tmp_path, monkeypatch, out):
    from unsir_core.errors import UnsirError
    from unsir_core.runs import check_run_target

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsirError, match="--out must name the run's folder"):
        check_run_target(out)


def test_a_run_that_cannot_take_its_place_is_kept_and_said(tmp_path):
    """Another writer put something that is not a run at the target while this one worked:
    the finished run is not thrown away, and the error names where it is."""
    from unsir_core.errors import UnsirError

    with pytest.raises(UnsirError, match=r"could not put the run into .*; the finished run is in .*r-") as err:
        with atomic_run_dir(tmp_path / "r") as d:
            write_json(d / "metrics.json", _metrics())
            (tmp_path / "r").mkdir()
            (tmp_path / "r" / "notes.txt").write_text("another writer's")
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("r-")]
    assert len(kept) == 1 and str(kept[0]) in str(err.value)
    assert read_run(kept[0])["forget_classes"] == [3]
    assert (tmp_path / "r" / "notes.txt").read_text() == "another writer's"


def test_the_target_is_checked_before_any_work(tmp_path):
    from unsir_core.errors import UnsirError
    from unsir_core.runs import check_run_target

    (tmp_path / "file").write_text("x")
    with pytest.raises(UnsirError, match="is a file, not a folder"):
        check_run_target(tmp_path / "file" / "run")
    assert check_run_target(tmp_path / "new" / "deeper" / "run") == tmp_path / "new" / "deeper" / "run"
    assert not (tmp_path / "new").exists()  # checking creates nothing


# --- a killed write is finished or undone ---------------------------------------------------

# Writes run "r" (metrics {"v": new}) over an existing one and kills itself with os._exit at
# the named point: "assembling" (inside the block, before metrics.json), "between" (the old
# run moved aside, the new one not yet in place) or "after" (the new run in place, the old one
# not yet deleted).
CHILD = r"""
import os, sys
from pathlib import Path
from unsir_core.runs import atomic_run_dir, write_json

out, point = Path(sys.argv[1]), sys.argv[2]
real, renames = Path.rename, []

def rename(self, target):
    renames.append(target)
    if point == "between" and len(renames) == 2:
        os._exit(9)
    result = real(self, target)
    if point == "after" and len(renames) == 2:
        os._exit(9)
    return result

Path.rename = rename
with atomic_run_dir(out) as d:
    (d / "unsir.safetensors").write_bytes(b"new weights")
    if point == "assembling":
        os._exit(9)
    write_json(d / "metrics.json", dict(json_run, v="new"))
"""


def _killed_write(tmp_path, point: str) -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = CHILD.replace("json_run", repr(_metrics()))
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r"), point], cwd=root)
    assert done.returncode == 9


@pytest.mark.parametrize("point, survivor", [("assembling", "old"), ("between", "new"), ("after", "new")])
def test_a_write_killed_at_any_point_leaves_one_whole_run(tmp_path, point, survivor):
    with atomic_run_dir(tmp_path / "r") as d:
        write_json(d / "metrics.json", dict(_metrics(), v="old"))
    _killed_write(tmp_path, point)
    assert any(p.name.startswith(".r.") for p in tmp_path.iterdir())  # the kill left a hidden folder
    [run] = list_runs(tmp_path)  # the listing finishes or undoes the write
    assert run.path.name == "r" and read_run(run.path)["v"] == survivor
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_write_in_progress_is_left_alone(tmp_path):
    import os

    from unsir_core.files import HOST

    # a write of this process (a dashboard job, while a page lists the runs), of a run whose
    # name holds numbers that look like a tag, and a killed write of another machine
    for name in (
        f".r.incomplete-{HOST}-{os.getpid()}-0123abcd",
        f".20260101-120000-r.incomplete-{HOST}-{os.getpid()}-0123abcd",
        f".r2.incomplete-abcdef-{_dead_pid()}-0123abcd",
    ):
        (tmp_path / name).mkdir()
    assert list_runs(tmp_path) == [] and len(list(tmp_path.iterdir())) == 3


def test_an_unfinished_replacement_brings_back_the_earlier_run(tmp_path):
    from unsir_core.files import HOST

    tag = f"{HOST}-{_dead_pid()}-0123abcd"
    old = tmp_path / f".r.old-{tag}"  # moved aside; the new run never got its metrics.json
    old.mkdir()
    write_json(old / "metrics.json", dict(_metrics(), v="old"))
    (tmp_path / f".r.incomplete-{tag}").mkdir()
    [run] = list_runs(tmp_path)
    assert read_run(run.path)["v"] == "old" and [p.name for p in tmp_path.iterdir()] == ["r"]


def test_temporary_checkpoints_of_killed_writers_are_removed_by_the_next_save(tmp_path):
    import os

    from unsir_core.checkpoints import save_checkpoint
    from unsir_core.files import HOST
    from unsir_core.models import create_model

    dead = tmp_path / f".tmp-{HOST}-{_dead_pid()}-0123abcd.safetensors"
    live = tmp_path / f".tmp-{HOST}-{os.getpid()}-4567cdef.safetensors"
    for path in (dead, live):
        path.write_bytes(b"half a checkpoint")
    save_checkpoint(create_model("allcnn", 10), tmp_path / "a.safetensors", {})
    assert not dead.exists() and live.exists() and (tmp_path / "a.safetensors").is_file()


# --- a malformed metrics.json is skipped, not fatal --------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("finished_at", None),
        ("finished_at", 12),
        ("forget_classes", "3"),
        ("models", []),
        ("models", {"unsir": {"forget_acc": "high"}}),
        ("config", None),
        ("config", {"dataset": "digits", "model": "resnet18", "seeds": 3}),
        ("config", {"dataset": "digits", "model": "resnet18", "seeds": None}),
        ("config", {"dataset": "digits", "model": "resnet18", "methods": [1]}),
    ],
)
def test_a_run_with_a_malformed_field_is_skipped_with_a_warning(tmp_path, field, value):
    with atomic_run_dir(tmp_path / "ok") as d:
        write_json(d / "metrics.json", _metrics())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text(json.dumps({**_metrics(), field: value}))
    with pytest.warns(UserWarning, match="skipping run bad"):
        runs = list_runs(tmp_path)
    assert [r.path.name for r in runs] == ["ok"]

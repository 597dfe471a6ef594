import pickle

import pytest
import torch

from unsir_core.checkpoints import load_into, read_metadata, save_checkpoint
from unsir_core.errors import CheckpointError
from unsir_core.model_cache import cache_key
from unsir_core.models import create_model

from .conftest import state_equal


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    a = create_model("allcnn", 10)
    path = save_checkpoint(a, tmp_path / "a.safetensors", {"model": "allcnn", "num_classes": 10})
    b = load_into(create_model("allcnn", 10), path, expect={"model": "allcnn", "num_classes": 10})
    assert state_equal(a, b)
    assert read_metadata(path)["model"] == "allcnn"
    assert not list(tmp_path.glob(".tmp-*")), "no temporary file is left behind"


def test_plain_state_dict_loads_with_weights_only(tmp_path):
    a = create_model("allcnn", 10)
    torch.save(a.state_dict(), tmp_path / "a.pt")
    assert state_equal(a, load_into(create_model("allcnn", 10), tmp_path / "a.pt"))


def test_other_architecture_is_refused_by_metadata(tmp_path):
    path = save_checkpoint(
        create_model("allcnn", 10), tmp_path / "a.safetensors", {"model": "allcnn", "num_classes": 10}
    )
    with pytest.raises(CheckpointError, match="model='allcnn', but 'resnet18' is needed"):
        load_into(create_model("resnet18", 10), path, expect={"model": "resnet18", "num_classes": 10})


def test_other_class_count_is_refused_by_shape(tmp_path):
    torch.save(create_model("resnet18", 100).state_dict(), tmp_path / "r100.pt")
    with pytest.raises(CheckpointError, match=r"another shape \(e.g. fc.weight: \(100, 512\) vs \(10, 512\)\)"):
        load_into(create_model("resnet18", 10), tmp_path / "r100.pt")


def test_other_architecture_without_metadata_is_refused(tmp_path):
    torch.save(create_model("allcnn", 10).state_dict(), tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="does not fit ResNet"):
        load_into(create_model("resnet18", 10), tmp_path / "a.pt")


def test_corrupt_file_is_a_clear_error(tmp_path):
    for name in ("bad.safetensors", "bad.pt"):
        (tmp_path / name).write_bytes(b"\x00garbage" * 10)
        with pytest.raises(CheckpointError, match="corrupt|not a readable|not a plain"):
            load_into(create_model("allcnn", 10), tmp_path / name)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_into(create_model("allcnn", 10), tmp_path / "missing.pt")


class Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_pickled_objects_are_never_executed(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"w": Payload()}, f)
    with pytest.raises(CheckpointError):
        load_into(create_model("allcnn", 10), tmp_path / "evil.pt")
    assert "arbitrary code ran" not in capsys.readouterr().out


def test_cache_key_is_stable_and_sensitive():
    spec = {"model": "resnet18", "seed": 0, "classes": [0, 1]}
    assert cache_key(spec) == cache_key(dict(reversed(list(spec.items()))))
    assert cache_key(spec) != cache_key({**spec, "seed": 1})


def test_non_finite_weights_are_refused_at_load(tmp_path):
    model = create_model("allcnn", 10)
    with torch.no_grad():
        model.classifier[0].weight[0, 0] = float("nan")
        model.features[0][0].weight[1, 0, 0, 0] = float("inf")
    path = save_checkpoint(model, tmp_path / "diverged.safetensors", {"model": "allcnn", "num_classes": 10})
    torch.save(model.state_dict(), tmp_path / "diverged.pt")
    for p in (path, tmp_path / "diverged.pt"):
        with pytest.raises(CheckpointError, match=r"holds 2 NaN or infinite value\(s\) in 2 tensor\(s\)"):
            load_into(create_model("allcnn", 10), p)


def test_a_refused_pickle_is_explained_without_advice_to_unpickle_it(tmp_path):
    torch.save({"w": torch.zeros(1), "extra": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_into(create_model("allcnn", 10), tmp_path / "evil.pt")
    message = str(err.value)
    assert "not a plain state_dict of tensors" in message and "never unpickled" in message
    assert "weights_only" not in message and "False" not in message


def test_a_torchscript_file_is_refused_without_advice_to_unpickle_it(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated; users still have such files
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "scripted.pt"))
        with pytest.raises(CheckpointError, match="TorchScript archive, not a state_dict") as err:
            load_into(create_model("allcnn", 10), tmp_path / "scripted.pt")
    assert "weights_only" not in str(err.value) and "False" not in str(err.value)


@pytest.mark.parametrize("meta", ['["model"]', "123", '"resnet18"', "null"])
def test_metadata_that_is_json_but_not_an_object_is_a_clear_error(tmp_path, meta):
    from safetensors.torch import save_file

    model = create_model("allcnn", 10)
    save_file(model.state_dict(), str(tmp_path / "odd.safetensors"), metadata={"unsir": meta})
    with pytest.raises(CheckpointError, match=r"odd.safetensors: its 'unsir' metadata is a JSON \w+, not an object"):
        load_into(create_model("allcnn", 10), tmp_path / "odd.safetensors", expect={"model": "allcnn"})

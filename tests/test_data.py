import os
from pathlib import Path

import pytest
import torch

from tests.fakes import fake_fashion, write_idx
from unsir_core.data import ImageTensors, forbid_classes, resolve_classes
from unsir_core.datasets import list_datasets, load_dataset
from unsir_core.errors import BadDataError, DataMissingError, InvalidClassesError, UnknownNameError, ZeroGlanceViolation


def test_registry_lists_every_dataset():
    assert {"digits", "cifar10", "cifar100", "fashionmnist", "imagefolder"} <= set(list_datasets())


def test_unknown_dataset_names_the_choices():
    with pytest.raises(UnknownNameError, match="unknown data set 'mnist'.*digits"):
        load_dataset("mnist")


def test_digits_is_32x32_rgb_with_a_fixed_disjoint_split(digits):
    assert digits.train.images.shape[1:] == (3, 32, 32) and digits.train.images.dtype == torch.uint8
    assert len(digits.train) + len(digits.test) == 1797
    assert digits.num_classes == 10 and digits.classes == [str(i) for i in range(10)]
    again = load_dataset("digits")
    assert torch.equal(again.test.labels, digits.test.labels)  # fixed, not seed-dependent
    # every class is in both splits, in proportion
    for c in range(10):
        assert (digits.test.labels == c).sum() >= 30
    x = digits.normalize(digits.train.images[:500])
    assert abs(x.mean().item()) < 0.2 and 0.8 < x.std().item() < 1.2


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "no forget class"),
        ("10", "out of range"),
        ("-1", "out of range"),
        ("3,3", "given twice"),
        ("zebra", "unknown class 'zebra'"),
        (",".join(str(i) for i in range(10)), "at least one class must be retained"),
    ],
)
def test_bad_forget_classes_are_refused(spec, message):
    with pytest.raises(InvalidClassesError, match=message):
        resolve_classes(spec, [str(i) for i in range(10)])


def test_forget_classes_by_id_or_name():
    names = ["airplane", "automobile", "bird", "cat"]
    assert resolve_classes("3", names) == (3,)
    assert resolve_classes("cat,0", names) == (0, 3)
    assert resolve_classes([2, "Cat"], names) == (2, 3)


def test_dr_sub_is_per_class_and_seeded(digits):
    a = digits.train.sample_per_class([0, 1, 2], 20, seed=1)
    b = digits.train.sample_per_class([0, 1, 2], 20, seed=1)
    c = digits.train.sample_per_class([0, 1, 2], 20, seed=2)
    assert len(a) == 60 and torch.bincount(a.labels, minlength=3)[:3].tolist() == [20, 20, 20]
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert len(digits.train.sample_per_class([0], 10_000, seed=0)) == (digits.train.labels == 0).sum()


def test_guard_blocks_forget_images_but_not_retained_ones(digits):
    retained = digits.train.select([0, 1])
    with forbid_classes([3]):
        assert retained.images.shape[0] == len(retained)
        assert len(digits.train.labels) > 0  # labels are metadata, not samples
        with pytest.raises(ZeroGlanceViolation, match=r"forget class\(es\) \[3\]"):
            _ = digits.train.images
        with pytest.raises(ZeroGlanceViolation):
            digits.test.select([3])
    assert digits.train.images is not None  # lifted afterwards


def test_image_tensors_validate_shapes():
    with pytest.raises(ValueError):
        ImageTensors(torch.zeros(2, 3, 8, 8), torch.zeros(2))  # float images
    with pytest.raises(ValueError):
        ImageTensors(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(3))


def test_cifar_missing_offline_names_directory_and_file(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):  # what urllib raises on a machine without network
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataMissingError) as err:
        load_dataset("cifar10", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "cifar-10-python.tar.gz" in str(err.value)


def test_imagefolder_reads_class_folders(tmp_path):
    from PIL import Image

    for c, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        folder = tmp_path / f"person_{c}"
        folder.mkdir()
        for i in range(5):
            Image.new("RGB", (40 + i, 50), colour).save(folder / f"{i}.png")
    data = load_dataset("imagefolder", tmp_path, image_size=24)
    assert data.classes == ["person_0", "person_1", "person_2"]
    assert data.train.images.shape[1:] == (3, 24, 24)
    assert len(data.train) + len(data.test) == 15 and set(data.test.labels.tolist()) == {0, 1, 2}


def test_imagefolder_reads_each_image_once_however_it_is_linked(tmp_path):
    from PIL import Image

    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for folder in (root / "p0" / "sub", root / "p1" / "sub", elsewhere):
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), (len(folder.parts), 0, 40 * i)).save(folder / f"{i}.png")
    (root / "p0" / "self").symlink_to(".")  # a loop: the same images forever
    (root / "p0" / "up").symlink_to("..")  # back up into the whole image folder
    (root / "p0" / "sub" / "loop").symlink_to(root / "p0")
    (root / "p1" / "other").symlink_to(root / "p0" / "sub")  # another class's images
    (root / "p1" / "linked").symlink_to(elsewhere)  # a user's data linked in: read, once
    (root / "p1" / "again").symlink_to(elsewhere)
    data = load_dataset("imagefolder", root, image_size=8)
    labels = torch.cat([data.train.labels, data.test.labels]).tolist()
    assert sorted(labels) == [0, 0, 0, 1, 1, 1, 1, 1, 1]  # no copy of a training image in the test split


def test_an_imagefolder_class_with_one_image_is_refused_by_name(tmp_path):
    from PIL import Image

    for c, n in (("cat", 4), ("dog", 1)):
        (tmp_path / c).mkdir()
        for i in range(n):
            Image.new("RGB", (10, 10), (60 * i, 0, 0)).save(tmp_path / c / f"{i}.png")
    with pytest.raises(DataMissingError, match="class 'dog' of .* has no training image: every class needs at least 2"):
        load_dataset("imagefolder", tmp_path, image_size=8)


def test_imagefolder_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataMissingError, match="does not exist"):
        load_dataset("imagefolder", tmp_path / "faces")


def test_batches_never_end_with_a_single_sample():
    from unsir_core.data import batches

    x, y = torch.zeros(129, 1, 1, 1, dtype=torch.uint8), torch.arange(129)
    sizes = [len(b[1]) for b in batches(x, y, 64, shuffle=True, generator=torch.Generator().manual_seed(0))]
    assert sizes == [64, 65] and sum(sizes) == 129
    x130 = torch.zeros(130, 1, 1, 1, dtype=torch.uint8)
    assert [len(b[1]) for b in batches(x130, torch.arange(130), 64)] == [64, 64, 2]


def test_an_undecodable_file_in_an_image_folder_is_named(tmp_path):
    from PIL import Image

    from unsir_core.errors import BadDataError

    for c in ("cat", "dog"):
        (tmp_path / "pets" / c).mkdir(parents=True)
        Image.new("RGB", (12, 12), (200, 10, 10)).save(tmp_path / "pets" / c / "ok.png")
    (tmp_path / "pets" / "dog" / "readme.png").write_text("a text file with an image's name")
    (tmp_path / "pets" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(BadDataError, match=r"pets/dog/broken.jpg cannot be read as an image .*, nor can 1 more file"):
        load_dataset("imagefolder", tmp_path / "pets", image_size=16)


def test_a_damaged_cifar_archive_is_named_as_damaged(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("x")))
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b truncated download")
    with pytest.raises(BadDataError, match=r"cifar-10-python.tar.gz is damaged: its MD5 checksum is not the official"):
        load_dataset("cifar10", tmp_path)
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == b"\x1f\x8b truncated download"  # left as it was


def test_a_failed_cifar_load_creates_no_folder(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("x")))
    with pytest.raises(DataMissingError):
        load_dataset("cifar10", tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_num_batches_counts_what_batch_indices_makes():
    from unsir_core.data import batch_indices, num_batches

    for n in range(0, 140):
        for batch_size in (1, 2, 3, 64):
            assert num_batches(n, batch_size) == len(list(batch_indices(n, batch_size))), (n, batch_size)


def test_read_idx_reads_mnist_files_and_refuses_others(tmp_path):
    import numpy as np

    from unsir_core.datasets import read_idx
    from unsir_core.errors import BadDataError

    for gz in (True, False):
        path = tmp_path / ("a.gz" if gz else "a")
        write_idx(path, [[1, 2, 3], [4, 5, 6]], gz)
        assert np.array_equal(read_idx(path), [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "text").write_bytes(b"not an idx file")
    with pytest.raises(BadDataError, match="is not an idx file"):
        read_idx(tmp_path / "text")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))  # says 9 values, holds 2
    with pytest.raises(BadDataError, match="holds 2 values, its header says"):
        read_idx(tmp_path / "short")


def test_fashionmnist_reads_torchvisions_layout_first(tmp_path, monkeypatch):
    import unsir_core.datasets as datasets

    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")  # present, but second
    fake_fashion(tmp_path / "debian", n_train=30)
    fake_fashion(tmp_path / "data" / "FashionMNIST" / "raw", gz=False)
    data = load_dataset("fashionmnist", tmp_path / "data", image_size=32)
    assert (len(data.train), len(data.test)) == (20, 10) and data.classes[0] == "T-shirt/top"
    assert data.train.images.shape[1:] == (3, 32, 32) and data.train.images.dtype == torch.uint8
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])  # grey, as 3 channels
    assert len(set(data.mean)) == 1 and data.train.labels.tolist() == [i % 10 for i in range(20)]
    assert len(load_dataset("fashionmnist", tmp_path / "elsewhere").train) == 30  # the Debian folder


def test_fashionmnist_missing_names_both_folders_and_the_apt_command(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    import unsir_core.datasets as datasets

    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("x")))
    with pytest.raises(DataMissingError) as err:
        load_dataset("fashionmnist", tmp_path / "data")
    message = str(err.value)
    assert str(tmp_path / "data" / "FashionMNIST" / "raw") in message and str(tmp_path / "debian") in message
    assert "apt-get install -y dataset-fashion-mnist" in message and not (tmp_path / "data").exists()


def test_presence_is_told_from_the_files_without_loading(tmp_path, monkeypatch):
    import unsir_core.datasets as datasets
    from unsir_core.datasets import dataset_present

    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    assert dataset_present("digits", tmp_path) is True  # embedded
    assert dataset_present("cifar10", tmp_path) is False and dataset_present("fashionmnist", tmp_path) is False
    assert dataset_present("imagefolder", tmp_path) is None  # a user's folder: cannot tell beforehand
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")  # the archive ...
    (tmp_path / "cifar-100-python").mkdir()  # ... or the folder it extracts to
    assert dataset_present("cifar10", tmp_path) and dataset_present("cifar100", tmp_path)
    fake_fashion(tmp_path / "debian")
    assert dataset_present("fashionmnist", tmp_path / "elsewhere")  # Debian's package counts
    assert all(isinstance(dataset_present(n, tmp_path), bool | None) for n in datasets.list_datasets())


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir() and not os.environ.get("UNSIR_REQUIRE_FASHION_MNIST"),
    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)",
)
def test_the_debian_fashionmnist_package_loads_whole(tmp_path):
    data = load_dataset("fashionmnist", tmp_path)
    assert (len(data.train), len(data.test)) == (60000, 10000)
    assert data.train.labels.bincount().tolist() == [6000] * 10

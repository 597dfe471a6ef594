"""Small stand-ins for data files that tests write: idx files, a Fashion-MNIST folder."""

import gzip

import numpy as np


def write_idx(path, array, gz: bool) -> None:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(header + array.tobytes())


def fake_fashion(folder, n_train=20, n_test=10, gz=True) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for images, labels, n in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte", n_train),
                              ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", n_test)):  # fmt: skip
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{images}{suffix}", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(folder / f"{labels}{suffix}", np.arange(n) % 10, gz)

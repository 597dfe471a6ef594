"""The paper's CIFAR-100 experiment: forget 20 classes at once from an ImageNet-pretrained
ResNet18 fine-tuned on CIFAR-100 (paper: retain accuracy 77.88 % before, 75.38 % after UNSIR).

    python -m bench.cifar100                      # classes 0-19, seeds 0,1,2, UNSIR and the baselines
    python -m bench.cifar100 --seeds 0 --methods unsir --out /tmp/c100.json

It is bench/unlearning.py with this setting's arguments (any of its options can be added and
win over these). It needs CIFAR-100 (the official ``cifar-100-python.tar.gz`` in the data
directory, or internet to download it) and torchvision's ResNet18 ImageNet weights (cached by
torch hub, or internet); when either is missing it says which and exits without running.
Which 20 classes the paper forgot is not stated; this script takes classes 0-19 by default.
"""

from __future__ import annotations

import sys

from bench.common import ROOT
from bench.unlearning import main
from unsir_core.errors import UnsirError

DEFAULTS = [
    "--dataset",
    "cifar100",
    "--model",
    "resnet18",
    "--recipe",
    "pretrained=true",
    "--forget",
    ",".join(str(c) for c in range(20)),
    "--seeds",
    "0,1,2",
    "--methods",
    "unsir,finetune,neggrad,fisher",
    "--out",
    str(ROOT / "bench/results/cifar100_resnet18_20classes.json"),
]


if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
    try:
        main(DEFAULTS + sys.argv[1:])  # argparse keeps the last value of a repeated option
    except UnsirError as err:
        raise SystemExit(f"error: {err}") from None

"""unsir_core: class-level machine unlearning with UNSIR, zero-glance.

Typical use::

    from unsir_core import load_dataset, create_model, unsir, UnsirConfig
    data = load_dataset("digits")
    ...
    result = unsir(model, forget_classes=[3], dr_sub=dr_sub, normalize=data.normalize)

The command line is ``python -m unsir_core --help``.
"""

__version__ = "0.1.0"

from .checkpoints import load_into, save_checkpoint  # noqa: E402
from .data import DataBundle, ImageTensors, forbid_classes, resolve_classes  # noqa: E402
from .datasets import list_datasets, load_dataset  # noqa: E402
from .errors import UnsirError  # noqa: E402
from .methods import UnlearnResult  # noqa: E402
from .models import create_model, list_models  # noqa: E402
from .recipes import TrainConfig, default_recipe  # noqa: E402
from .runtime import resolve_device, set_seed  # noqa: E402
from .train import fit, train_one_epoch  # noqa: E402

# Importing these registers the methods, in the order every list shows them: UNSIR first.
# isort: off
from .unsir import UnsirConfig, impair, learn_noise, repair, unsir  # noqa: E402
from . import unsir_method  # noqa: E402, F401
from . import baselines  # noqa: E402, F401
from . import relabel  # noqa: E402, F401
from . import scrub  # noqa: E402, F401
from . import ssd  # noqa: E402, F401
# isort: on

__all__ = [
    "DataBundle",
    "ImageTensors",
    "TrainConfig",
    "UnlearnResult",
    "UnsirConfig",
    "UnsirError",
    "create_model",
    "default_recipe",
    "fit",
    "forbid_classes",
    "impair",
    "learn_noise",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_into",
    "repair",
    "resolve_classes",
    "resolve_device",
    "save_checkpoint",
    "set_seed",
    "train_one_epoch",
    "unsir",
]

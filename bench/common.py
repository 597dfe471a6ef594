"""What the benchmark scripts share: the common arguments, writing a result. (Typed
``FIELD=VALUE`` changes are ``unsir_core.config.with_overrides``, as on the command line.)"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the arguments every benchmark takes: data set, model, device, data dir."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="cifar10", help="data set (default cifar10)")
    p.add_argument("--model", default="resnet18", help="architecture (default resnet18)")
    p.add_argument("--device", default="auto", help="auto: CUDA, then MPS, then CPU")
    p.add_argument("--data-dir", help="data directory (default: $UNSIR_DATA_DIR or the per-user cache)")
    return p


def command() -> str:
    """The command line as invoked (``python -m bench.<script> ...``), for the result's record."""
    return shlex.join(["python", "-m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]])


def write_result(path: str | Path, payload: dict) -> None:
    """Write a result file (JSON) to ``path`` atomically, creating its folder."""
    from unsir_core.files import write_text

    write_text(path, json.dumps(payload, indent=2))


def named_changes(item: str, flag: str) -> tuple[str, list[str]]:
    """``NAME:FIELD=VALUE;FIELD=VALUE`` (a sweep's ``--point``, a recipe ``--variant``) ->
    (NAME, ["FIELD=VALUE", ...]); the changes are typed later, by ``with_overrides``."""
    from unsir_core.errors import UnsirError

    name, sep, changes = item.partition(":")
    if not sep or not name.strip():
        raise UnsirError(f"{flag} takes NAME:FIELD=VALUE;..., got {item!r}")
    return name.strip(), [c.strip() for c in changes.split(";") if c.strip()]


def add_recipe_argument(p: argparse.ArgumentParser) -> None:
    """``--recipe``: the recipe set of the original and retrained models (``official``, the
    default, or ``fast``) and/or ``FIELD=VALUE`` changes to it; repeatable."""
    p.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="SET|FIELD=VALUE",
        help="training recipe of the original and retrained models: a recipe set (official, the default, "
        "or fast) and/or FIELD=VALUE changes, e.g. --recipe fast --recipe epochs=3",
    )


def recipe_set(items: list[str]) -> str:
    """The recipe set ``--recipe`` names (official unless one is named): the set of the models'
    recipe, and the one a method's tuned defaults are chosen for."""
    from unsir_core.errors import InvalidConfigError

    names = [item for item in items if "=" not in item]
    if len(names) > 1:
        raise InvalidConfigError(f"--recipe names one recipe set, got {', '.join(names)}")
    return names[0] if names else "official"


def recipe_from(dataset: str, model: str, items: list[str]):
    """The training recipe ``--recipe`` describes: the named set's recipe for (dataset, model)
    with the ``FIELD=VALUE`` changes applied."""
    from unsir_core.config import with_overrides
    from unsir_core.recipes import default_recipe

    base = default_recipe(dataset, model, recipe_set(items))
    return with_overrides(base, [item for item in items if "=" in item])


def timed_epochs(data, model_name, recipe, classes, epochs, device, seed) -> dict:
    """Train a fresh model on the training samples of ``classes`` for ``epochs`` epochs of
    ``recipe`` (not cached; the held-out split of the same classes evaluated every epoch, as
    the model cache trains), its time scaled to the recipe's epoch count."""
    from dataclasses import replace

    from unsir_core.models import create_model
    from unsir_core.runtime import set_seed
    from unsir_core.train import fit

    set_seed(seed)
    model = create_model(model_name, data.num_classes, image_size=data.image_shape[-1], pretrained=recipe.pretrained)
    train = data.train.select(classes)
    result = fit(
        model,
        train,
        data.normalize,
        replace(recipe, epochs=epochs),
        device,
        seed=seed,
        held_out=data.test.select(classes),
    )
    return {
        "seconds": result.seconds * recipe.epochs / epochs,
        "epochs": recipe.epochs,
        "samples": len(train),
        "scaled": True,
        "measured_epochs": epochs,
        "measured_seconds": result.seconds,
    }


def time_retraining(data, model_name, recipe, forget_sets, device, *, seed, cache_dir, epochs) -> dict:
    """Seconds to retrain without one of ``forget_sets``: the measured time of a full retraining
    in the cache when one of the sets has one, else ``epochs`` timed epochs without the first
    set, scaled to the recipe's epoch count. ``samples`` lets callers scale to other sets."""
    from unsir_core.checkpoints import read_metadata
    from unsir_core.data import retained_classes
    from unsir_core.model_cache import model_cache_path

    for forget in forget_sets:
        retain = retained_classes(forget, data.num_classes)
        path, _ = model_cache_path(data, model_name, recipe, retain, seed=seed, cache_dir=cache_dir)
        if path.exists() and read_metadata(path).get("seconds"):
            return {
                "seconds": float(read_metadata(path)["seconds"]),
                "epochs": recipe.epochs,
                "samples": len(data.train.select(retain)),
                "scaled": False,
                "forget": list(forget),
                "source": str(path),
            }
    retain = retained_classes(forget_sets[0], data.num_classes)
    return timed_epochs(data, model_name, recipe, retain, epochs, device, seed) | {"forget": list(forget_sets[0])}

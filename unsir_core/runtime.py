"""What every long computation shares: the device, seeding, progress reports and timing.

``device`` is always passed in, never assumed: :func:`resolve_device` turns ``auto`` into
CUDA, then Apple MPS, then the CPU. Progress is a plain callback, ``progress(phase, done,
total)``, so that the CLI (tqdm), the dashboard's job queue and tests can all listen.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from .errors import InvalidConfigError, UnsirError

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: called after each step of a phase (e.g. "train")."""

MAX_SEED = 2**32 - 1  # NumPy's limit; torch and Python accept it too


def step_counter(progress: ProgressFn | None, phase: str, total: int) -> Callable[[], None]:
    """A no-argument callback that reports ``progress(phase, steps so far, total)``."""
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(phase, done, total)

    return tick


def check_seed(seed: int, what: str = "seed") -> int:
    """``seed`` if it is an integer in [0, 2**32 - 1], else an :class:`InvalidConfigError`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidConfigError(f"{what} must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU. An explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UnsirError("--device cuda was asked for, but no CUDA GPU is available; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UnsirError("--device mps was asked for, but Apple MPS is not available")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise UnsirError(f"unknown device {name!r}: {err}") from err


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock time covers it (CUDA is
    asynchronous; the CPU is not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- optimisers -------------------------------------------------------------------------------

# Devices whose optimisers are fused here (the whole update in one kernel rather than a loop
# over parameter tensors): the CPU, where it was measured faster
# (bench/results/profile_step_resnet18_b64_cpu.json), and CUDA, torch's own fast path. Other
# devices (MPS, XPU) keep torch's default until measured.
FUSED_DEVICES = ("cpu", "cuda")


def new_optimizer(
    cls: type[torch.optim.Optimizer], params: Iterable[torch.Tensor] | Iterable[dict], **kwargs
) -> torch.optim.Optimizer:
    """``cls(params, **kwargs)`` (Adam, AdamW, SGD), fused when every parameter (of every
    parameter group) is a floating point tensor on a device of :data:`FUSED_DEVICES`; else
    torch's default implementation, as when the caller says ``fused`` or ``foreach`` itself.
    Every optimiser of the core is made here (bench/notebook.py, the official notebook as it
    was, keeps its own)."""
    params = [{**p, "params": list(p["params"])} if isinstance(p, dict) else p for p in params]
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    if "fused" not in kwargs and "foreach" not in kwargs:
        kwargs["fused"] = (
            True if all(t.device.type in FUSED_DEVICES and t.is_floating_point() for t in tensors) else None
        )
    return cls(params, **kwargs)


# --- numeric precision ------------------------------------------------------------------------

PRECISIONS = ("fp32", "bf16", "fp16")  # fp32: full precision; bf16 / fp16: autocast (mixed precision)
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """An :class:`UnsirError` for a precision the device cannot run (fp16 needs CUDA)."""
    if precision not in PRECISIONS:
        raise InvalidConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise UnsirError(f"fp16 mixed precision needs a CUDA device, not {device.type}; use bf16 or fp32")


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """The context for a forward pass in ``precision``: nothing for fp32, else torch.autocast
    (matrix products and convolutions in bf16 / fp16, reductions and losses in fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    check_precision(precision, device)
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str = "fp32") -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (its small range would flush small gradients to
    zero; bf16 has fp32's range). Disabled, it passes the loss and the step straight through."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@contextlib.contextmanager
def deterministic_kernels(device: torch.device) -> Iterator[None]:
    """Evaluation's kernels on CUDA for the block: cuDNN's deterministic algorithms, chosen by
    heuristics rather than timed (``benchmark``), and full fp32 instead of TF32 in convolutions
    and matrix products, so the same weights give the same figures in every run (the audit's
    ``--resume`` once stopped on one image in 9,000). Inference is a small share of any run, so
    this costs little; training keeps PyTorch's defaults. Nothing changes on a CPU."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(
            enabled=torch.backends.cudnn.enabled, benchmark=False, deterministic=True, allow_tf32=False
        ):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul

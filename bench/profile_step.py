"""Where a training step's time goes, and which memory format / compilation is fastest here.

    python -m bench.profile_step --model resnet18 --steps 20 --out bench/results/profile_step.json
    python -m bench.profile_step --batch 64 --fused --steps 40 --out bench/results/profile_step_resnet18_b64_cpu.json

Times one optimiser step (forward, cross-entropy, backward, Adam) of ``--model`` on a batch of
CIFAR-shaped inputs, for every variant side by side in one run, interleaved (variant A, B, A,
B, ...) so that machine noise hits them alike; reports the median seconds per step and the
ratio to the first variant. Variants: the default (contiguous) memory format, channels_last,
each of them under ``torch.compile`` when ``--compile`` is given (the compile time is
reported apart), and channels_last with torch's fused Adam (``--fused``; the project's
optimisers are fused, see runtime.new_optimizer) against its default implementation. Also
times the noise step of UNSIR (gradient w.r.t. the input only, weights frozen) and inference,
and prints torch.profiler's top operators of the channels_last step.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from bench.common import base_parser, command, write_result
from unsir_core.models import create_model
from unsir_core.provenance import environment
from unsir_core.runtime import resolve_device


def make_variant(name: str, model_name: str, device: torch.device, compile_: bool):
    model = create_model(model_name, 10, image_size=32).to(device)
    fmt = torch.channels_last if "channels_last" in name else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    # torch's default implementation for the device, or the fused one the core uses (runtime.new_optimizer)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True if "fused" in name else None)
    fn = torch.compile(model) if compile_ else model

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.cross_entropy(fn(x.contiguous(memory_format=fmt)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return model, fn, fmt, step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    p.add_argument("--compile", action="store_true", help="also try torch.compile")
    p.add_argument("--fused", action="store_true", help="also try channels_last with fused Adam")
    p.add_argument("--out")
    args = p.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    names = ["contiguous", "channels_last"]
    if args.compile:
        names += ["compiled contiguous", "compiled channels_last"]
    if args.fused:
        names += ["channels_last, fused Adam"]
    variants, compile_seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        variants[name] = make_variant(name, args.model, device, name.startswith("compiled"))
        for _ in range(3):  # warm-up (and compilation)
            variants[name][3](x, y)
        sync(device)
        compile_seconds[name] = time.perf_counter() - start

    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.steps):
        for name in names:
            sync(device)
            t = time.perf_counter()
            variants[name][3](x, y)
            sync(device)
            times[name].append(time.perf_counter() - t)

    # UNSIR's noise step (weights frozen, gradient w.r.t. the input) and inference, channels_last
    model, fn, fmt, _ = variants["channels_last"]
    model.requires_grad_(False).eval()
    noise = torch.randn(args.batch, 3, 32, 32, device=device).contiguous(memory_format=fmt).requires_grad_(True)
    extra: dict[str, list[float]] = {"noise step (input gradient)": [], "inference": []}
    for _ in range(args.steps):
        sync(device)
        t = time.perf_counter()
        (-F.cross_entropy(fn(noise), y)).backward()
        sync(device)
        extra["noise step (input gradient)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.no_grad():
            fn(x.contiguous(memory_format=fmt))
        sync(device)
        extra["inference"].append(time.perf_counter() - t)
    model.requires_grad_(True).train()

    base = statistics.median(times[names[0]])
    rows = {
        n: {
            "median_s": statistics.median(v),
            "ratio_to_first": statistics.median(v) / base,
            "setup_s": compile_seconds[n],
        }
        for n, v in times.items()
    }
    rows.update(
        {n: {"median_s": statistics.median(v), "ratio_to_first": statistics.median(v) / base} for n, v in extra.items()}
    )
    print(f"{args.model}, batch {args.batch}, {device}, {torch.get_num_threads()} threads, {args.steps} steps each")
    print(f"{'variant':<30} {'s/step':>8} {'ratio':>6} {'setup s':>8}")
    for n, r in rows.items():
        setup = f"{r['setup_s']:>8.1f}" if "setup_s" in r else ""
        print(f"{n:<30} {r['median_s']:>8.4f} {r['ratio_to_first']:>6.2f} {setup}")

    step = variants["channels_last"][3]
    with torch.profiler.profile() as prof:
        for _ in range(3):
            step(x, y)
        sync(device)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    print(table)
    if args.out:
        payload = {
            "command": command(),
            "model": args.model,
            "batch": args.batch,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "rows": rows,
            "profile_top_ops": table,
            "environment": environment(),
        }
        write_result(args.out, payload)


if __name__ == "__main__":
    main()

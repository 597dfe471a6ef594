"""What the command line shows: a progress bar per phase, and a run's headline table."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class TqdmProgress:
    """A ``ProgressFn`` that shows one tqdm bar per phase (on stderr)."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.bar: tqdm | None = None
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.bar is None or phase != self.phase or done < self.bar.n or total != self.bar.total:
            self.close()
            self.bar = tqdm(
                total=total, desc=f"{phase:>8}", unit="step", leave=True, disable=self.disable, file=sys.stderr
            )
            self.phase = phase
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_table(metrics: dict) -> str:
    """The headline numbers of a run as a text table (mean +- std over seeds)."""

    def cell(m: dict, key: str, fmt: str) -> str:
        value = m.get(key)
        if value is None:
            return "-"
        std = m.get("std", {}).get(key, 0.0)
        return format(value, fmt) + (f"+-{std:{fmt}}" if len(metrics["per_seed"]) > 1 else "")

    lines = [f"{'model':<12} {'forget_acc':>14} {'retain_acc':>14} {'seconds':>12} {'MIA':>6} {'relearn':>8}"]
    for name, m in metrics["models"].items():
        mia = m.get("mia", {}).get("member_rate")
        relearn = m.get("relearn", {}).get("steps")
        lines.append(
            f"{name:<12} {cell(m, 'forget_acc', '.4f'):>14} {cell(m, 'retain_acc', '.4f'):>14} "
            f"{cell(m, 'seconds', '.1f'):>12} {'-' if mia is None else f'{mia:.3f}':>6} "
            f"{'-' if relearn is None else f'{relearn:.0f}':>8}"
        )
    return "\n".join(lines)

"""Time the dashboard as a new user meets it: from an empty cache, by clicking alone, to the
comparison of original, unlearned and retrained models; and the same experiment on the CLI,
in the same run, for the ratio. Prints a table, writes JSON.

    python -m bench.dashboard --repeat 3 --out bench/results/dashboard.json
    python -m bench.dashboard --repeat 3 --baseline 6069fc4 --out bench/results/dashboard.json

With ``--baseline REV`` the same path is also timed on another commit (checked out in a
temporary git worktree, run with this environment), alternating with the working tree in every
repeat, so that before and after are measured side by side in one run on the same machine.

Each repeat starts ``streamlit run app.py`` with a fresh cache and run store, opens it in
headless Chromium (Playwright, system Chromium: ``apt-get install -y chromium``), goes to
Unlearn (class 3 is preselected), presses Unlearn, waits for the job, opens Inspect and waits
until the GradCAM heatmaps of the three models, the weight-distance chart and the prediction
chart are shown. Times are wall-clock seconds from the click; the job's own phases come from
the run's metrics.json. The CLI figure is ``python -m unsir_core experiment`` with a fresh
cache on the same settings (its process start and ``import torch`` included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import ROOT, command, write_result
from tests.browser import LAUNCH_ARGS, chromium, serve


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A temporary, detached git worktree of commit ``rev`` (checked to be one first, so that
    nothing the user typed reaches git as an option); removed afterwards."""
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        raise SystemExit(f"--baseline {rev!r} is not a commit of this repository")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(tree), found.stdout.strip()], cwd=ROOT, check=True
        )
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


def click_through(browser, url: str, shots: Path | None) -> dict[str, float]:
    """One new user's path; returns seconds of each step (job and inspect from the click)."""
    from playwright.sync_api import expect

    t0 = time.monotonic()
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_role("heading", name="Models").wait_for(timeout=60_000)
    page.get_by_role("link", name="Unlearn").click()
    page.get_by_role("heading", name="Unlearn").wait_for(timeout=60_000)
    expect(page.get_by_text("3: 3").first).to_be_visible()
    opened = time.monotonic() - t0

    click = time.monotonic()
    page.get_by_role("button", name="Unlearn", exact=True).click()
    expect(page.get_by_text("Finished. The comparison is on the Inspect page.")).to_be_visible(timeout=600_000)
    job = time.monotonic() - click
    page.get_by_role("link", name="Inspect the result").click()
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=120_000)
    expect(page.get_by_text(re.compile(r"^pred \S+$"))).to_have_count(2 * 4 * 3, timeout=120_000)
    inspect = time.monotonic() - click
    if shots is not None:
        page.screenshot(path=shots / "inspect.png")  # numbers and the two charts
        page.get_by_role("heading", name="GradCAM").scroll_into_view_if_needed()
        page.screenshot(path=shots / "gradcam.png")  # the heatmaps of the three models
    page.context.close()
    return {"open_seconds": opened, "job_seconds": job, "click_to_comparison_seconds": inspect}


def cli_seconds(cache: Path, out: Path, tree: Path = ROOT) -> float:
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "unsir_core",
            "experiment",
            "--dataset",
            "digits",
            "--model",
            "resnet18",
            "--forget",
            "3",
            "--quiet",
            "--cache-dir",
            str(cache),
            "--out",
            str(out),
        ],
        cwd=tree,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - start


def job_phases(runs: Path) -> dict:
    metrics = json.loads(next(runs.glob("*/metrics.json")).read_text())
    models = metrics["models"]
    return {
        "original_train_seconds": models["original"]["seconds"],
        "retrain_seconds": models["retrained"]["seconds"],
        "unsir_seconds": models["unsir"]["seconds"],
        "unsir_phases": models["unsir"]["phases"],
    }


def one_path(tree: Path, shots: Path | None, with_cli: bool) -> dict:
    """One new user's path on the code of ``tree``, from an empty cache and run store."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {"UNSIR_CACHE_DIR": str(tmp / "cache"), "UNSIR_RUNS_DIR": str(tmp / "runs")}
        with serve(env, tmp / "streamlit.log", tree) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=LAUNCH_ARGS)
            row = click_through(browser, url, shots)
            browser.close()
        row.update(job_phases(tmp / "runs"))
        if with_cli:
            row["cli_seconds"] = cli_seconds(tmp / "cli-cache", tmp / "cli-run", tree)
    return row


def medians(rows: list[dict]) -> dict[str, float]:
    summary = {k: statistics.median(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k], float)}
    if "cli_seconds" in summary:
        summary["dashboard_over_cli"] = summary["click_to_comparison_seconds"] / summary["cli_seconds"]
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--no-cli", action="store_true", help="skip the CLI comparison")
    p.add_argument("--baseline", metavar="REV", help="also time this commit, alternating, in the same run")
    p.add_argument("--shots", help="folder for screenshots of the Inspect page (inspect.png, gradcam.png)")
    p.add_argument("--out", help="JSON file for the results")
    args = p.parse_args()
    from unsir_core.provenance import environment, git_commit, git_dirty

    if chromium() is None:
        raise SystemExit("no Chromium binary: apt-get install -y chromium (or set UNSIR_CHROMIUM)")
    shots = Path(args.shots) if args.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        trees = {"new": ROOT}
        if args.baseline:
            trees = {"baseline": stack.enter_context(checkout(args.baseline)), "new": ROOT}
        commits = {name: {"commit": git_commit(tree), "dirty": git_dirty(tree)} for name, tree in trees.items()}
        rows: dict[str, list[dict]] = {name: [] for name in trees}
        print(f"{'code':<9} {'repeat':>6} {'open':>6} {'job':>6} {'to comparison':>14} {'cli':>6}", flush=True)
        for i in range(args.repeat):
            # alternate which goes first, so that neither always meets a warmer machine (with an odd
            # --repeat the baseline goes first once more than the working tree)
            for name in list(trees)[:: 1 if i % 2 == 0 else -1]:
                row = one_path(trees[name], shots if name == "new" else None, not args.no_cli)
                rows[name].append(row)
                cli = row.get("cli_seconds", float("nan"))
                print(
                    f"{name:<9} {i:>6} {row['open_seconds']:>6.1f} {row['job_seconds']:>6.1f} "
                    f"{row['click_to_comparison_seconds']:>14.1f} {cli:>6.1f}",
                    flush=True,
                )
    summary = {name: medians(r) for name, r in rows.items()}
    for name, med in summary.items():
        print(f"medians ({name}):", {k: round(v, 2) for k, v in med.items()})
    payload = {"command": command(), "rows": rows["new"], "median": summary["new"], "commits": commits}
    if args.baseline:
        payload["baseline"] = {"rev": args.baseline, "rows": rows["baseline"], "median": summary["baseline"]}
        payload["speedup_vs_baseline"] = {
            k: summary["baseline"][k] / summary["new"][k]
            for k in ("job_seconds", "click_to_comparison_seconds", "cli_seconds")
            if k in summary["new"]
        }
        ratios = {k: round(v, 2) for k, v in payload["speedup_vs_baseline"].items()}
        print("speed-up over the baseline (median / median):", ratios)
    if args.out:
        write_result(args.out, {**payload, "environment": environment()})


if __name__ == "__main__":
    main()

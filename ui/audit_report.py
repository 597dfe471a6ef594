"""A run as a self-contained audit report: one HTML file with the charts (plotly.js inlined,
so it opens offline), the numbers, the config, the seeds and the library versions."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

from unsir_core.runs import class_names

from . import charts, present


def _table(rows: Mapping[str, object]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{cells}</table>"


def build_report(metrics: Mapping, title: str | None = None) -> str:
    """The HTML text of the audit report of one run's ``metrics`` (metrics.json content)."""
    cfg, models = metrics["config"], metrics["models"]
    names = class_names(metrics)
    forget = metrics["forget_classes"]
    title = title or (
        f"Unlearning audit: {cfg['dataset']} / {cfg['model']}, forget " + ", ".join(f"{c} ({names[c]})" for c in forget)
    )
    shown = present.measured(models, names, forget)
    figures = [fig for item in shown for fig in item.figures]
    parts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
        for i, fig in enumerate(figures)
    ]
    table = charts.summary_text(charts.summary_table(models)).to_html(border=0)
    errors = metrics.get("errors") or {}
    # each measured metric's teaching text, said once (charts in markdown: bold marks removed)
    definitions = "".join(f"<li>{html.escape(item.teaching.replace('**', ''))}</li>" for item in shown)
    zero_glance = [k for k, m in models.items() if m.get("zero_glance")]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ padding: 4px 10px; border-bottom: 1px solid #ddd;
text-align: right; }} th {{ text-align: left; }} pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Finished {html.escape(str(metrics.get("finished_at", "")))}; seeds {cfg.get("seeds", [cfg.get("seed")])}
(numbers are means over seeds). Zero-glance methods (never read a forget-class sample):
{html.escape(", ".join(zero_glance) or "none")}.</p>
<h2>Results</h2>
<p>Forget / retain accuracy: fraction of test (or train) samples of the forget / retained classes classified
correctly. Seconds: wall time of the unlearning (or training). Relearn steps count until forget accuracy is back
to {cfg.get("relearn_fraction", 0.9):.0%} of the original's.</p>
<ul>{definitions}</ul>
{table}
{"<p><b>Methods that failed:</b> " + html.escape(json.dumps(errors)) + "</p>" if errors else ""}
<h2>Charts</h2>
{"".join(parts) or "<p>This run measured no metric that has a chart.</p>"}
<h2>Config</h2><pre>{html.escape(json.dumps(cfg, indent=2))}</pre>
<h2>Environment</h2>{_table(metrics.get("environment", {}))}
</body></html>
"""

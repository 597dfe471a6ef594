"""Unlearn: pick forget classes and methods, start a background job, follow its progress."""

import streamlit as st

from ui.job_panel import UNLEARN, live_jobs, submit_experiment
from ui.layout import page_setup, teaching, user_message
from ui.loaders import data_or_stop, settings_data
from ui.present import metrics_help
from ui.state import Keys
from unsir_core.config import field_choices
from unsir_core.data import resolve_classes
from unsir_core.errors import UnsirError
from unsir_core.evaluation import list_metrics
from unsir_core.experiment import ExperimentConfig
from unsir_core.jobs import Job
from unsir_core.methods import get_method, headline_method, method_config, method_knobs, unlearning_methods

s = page_setup("Unlearn")
teaching(
    "**UNSIR** forgets a class **without looking at it**: it learns noise that maximises the model's error on "
    "the forget class (from the model alone), trains one *impair* epoch on that noise plus a small subset of "
    "the retained classes, then one *repair* epoch on the retained subset. The **retrained** model (trained "
    "from scratch without the class) is the gold standard it is compared with. Methods marked *reads forget "
    "data* are baselines that need the very samples a privacy request may forbid."
)
data = data_or_stop(s)

names = [f"{c}: {n}" for c, n in enumerate(data.classes)]
chosen = st.multiselect("Classes to forget", names, default=names[3:4], help="One or several classes.")
forget_ids = [names.index(c) for c in chosen]
if forget_ids:
    cols = st.columns(min(len(forget_ids), 4))
    for col, c in zip(cols, forget_ids, strict=False):
        idx = (data.test.labels == c).nonzero().squeeze(1)[:8]
        col.image([img.permute(1, 2, 0).numpy() for img in data.test.images[idx]], width=48, caption=None)
        col.caption(f"class {names[c]}")

offered = unlearning_methods()
labels = {m: f"{m} ({'reads forget data' if get_method(m).reads_forget else 'zero-glance'})" for m in offered}
methods = st.multiselect(
    "Methods",
    offered,
    default=[headline_method().name],
    format_func=labels.get,
    help="The retrained gold standard is always trained (or taken from the cache) alongside.",
)

ablation = st.checkbox(
    "What does the noise add?",
    help="Also run UNSIR with random noise (drawn, not optimised) and without noise (the impair epoch on the "
    "retained subset alone), with UNSIR's hyper-parameters, in the same job.",
)
if ablation:
    headline = headline_method()
    methods = [*([] if headline.name in methods else [headline.name]), *methods]
    methods += [m for m in headline.variants() if m not in methods]

overrides, presets = [], {}
for m in methods:
    if get_method(m).variant_of is not None:
        continue  # an ablation runs with the hyper-parameters of the method it varies
    with st.expander(f"{m} hyper-parameters"):
        # a model brought in has an unknown recipe: the method's preset for that (UNSIR: calibrated)
        preset = get_method(m).default_preset(recipe_known=not s.uploaded)
        if len(names := get_method(m).preset_names()) > 1:
            preset = st.selectbox(
                "Preset",
                names,
                index=names.index(preset),
                key=f"preset-{m}-{'upload' if s.uploaded else 'own'}",
                help="Named ways of choosing the hyper-parameters; tuned: the defaults measured for this data set, "
                "model and recipe set; calibrated: step sizes chosen for this very model from retained images "
                "(the default for an uploaded model, whose recipe is unknown). The fields below start from the "
                "preset. The docs give UNSIR's presets (fast: fewer passes, official: the paper's values) with "
                "their measured trade-off.",
            )
        base = method_config(m, s.dataset, s.model, preset=preset, recipes=s.recipes)
        presets[m] = preset
        for field, _, help_text in method_knobs(m):
            value = getattr(base, field)
            widget_key = f"knob-{s.dataset}-{s.model}-{s.recipes}-{m}-{preset}-{field}"
            if options := field_choices(get_method(m).config, field):
                new = st.selectbox(field, options, index=options.index(value), help=help_text, key=widget_key)
            elif isinstance(value, bool):
                new = st.checkbox(field, value=value, help=help_text, key=widget_key)
            elif isinstance(value, int):
                new = int(st.number_input(field, value=value, step=1, help=help_text, key=widget_key))
            elif isinstance(value, float):
                new = float(st.number_input(field, value=value, format="%g", help=help_text, key=widget_key))
            else:
                continue
            if new != value:
                overrides.append((m, field, new))
        st.caption(
            "Calibrated for this model: the step sizes are chosen for it while it unlearns (Inspect shows how)."
            if getattr(base, "calibrate", False)
            else f"Defaults are tuned for {s.model} on {s.dataset} trained with the {s.recipes} recipe set"
            + (" (the sidebar's: an uploaded model may have been trained otherwise)." if s.uploaded else ".")
        )

metrics = st.multiselect(
    "Metrics beyond accuracy",
    list_metrics(),
    default=list(ExperimentConfig.metrics),
    help=metrics_help(),
)

if st.button("Unlearn", type="primary"):
    try:
        forget = resolve_classes(forget_ids, data.classes)
        if not methods:
            raise UnsirError("choose at least one method")
        cfg = ExperimentConfig(
            dataset=s.dataset,
            model=s.model,
            forget=tuple(forget),
            seed=s.seed,
            device=s.device,
            data_dir=settings_data(s)[1],
            methods=tuple(methods),
            presets=presets,
            method_overrides=tuple(overrides),
            metrics=tuple(metrics),
            original_checkpoint=s.uploaded,
            recipes=s.recipes,
            train=s.recipe,
        )
        what = f"{', '.join(names[c] for c in forget)} with {', '.join(methods)}"
        label = f"unlearn {what} ({s.model}, {s.dataset}, {s.recipes} recipe)"
        submit_experiment(cfg, label)
    except UnsirError as err:
        st.error(user_message(err))


def show_finished(jobs: list[Job]) -> None:
    done = [j for j in jobs if j.state == "done"]
    if done:
        st.session_state[Keys.LAST_RUN] = done[-1].result
        st.success("Finished. The comparison is on the Inspect page.")
        st.page_link("views/inspect_models.py", label="Inspect the result", icon=":material/arrow_forward:")


live_jobs(UNLEARN, on_update=show_finished)

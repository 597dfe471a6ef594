"""Inspect: original | unlearned | retrained side by side (GradCAM, weight distance,
prediction distribution, and the numbers), for any stored run, on the run's own data set and
model whatever the sidebar says."""

from pathlib import Path

import streamlit as st
import torch

from ui import charts, present
from ui.layout import page_setup, teaching, user_message
from ui.loaders import heatmaps, load_data, model_at, run_data
from ui.runstore import stored_runs
from ui.state import Keys
from unsir_core.errors import UnsirError
from unsir_core.runs import class_names, read_run, run_checkpoints, unlearned_models

page_setup("Inspect")
teaching(
    "Three models side by side: the **original**, the **unlearned** one and the **retrained** gold standard.\n\n"
    "- **GradCAM** paints where a model looks for the image's true class. After forgetting, the heat on "
    "forget-class images should fade or scatter, as in the retrained model, and stay put on retained images.\n"
    "- **Per-layer weight distance** (log scale) shows which layers unlearning changed; retraining changes all.\n"
    "- **Prediction distribution**: what forget-class images are classified as. Forgetting moves them to other "
    "(similar) classes, as the retrained model does.\n"
    "- **Relearn steps**: how fast the class comes back by fine-tuning; few steps hint the knowledge is "
    "suppressed rather than gone. **MIA member rate**: how many forget-class training images a membership "
    "attack still recognises as training data."
)

runs = stored_runs()
if not runs:
    st.info("No runs yet. Start one on the Unlearn page.")
    st.page_link("views/unlearn.py", label="Go to Unlearn", icon=":material/arrow_forward:")
    st.stop()
paths = [str(r.path) for r in runs]
last = st.session_state.get(Keys.LAST_RUN)
choice = st.selectbox(
    "Run",
    paths,
    index=paths.index(last) if last in paths else 0,
    key=Keys.INSPECT_RUN,
    format_func=lambda p: Path(p).name,
)
try:
    metrics = read_run(choice)
except UnsirError as err:  # changed on disk since it was listed
    st.error(user_message(err))
    st.stop()
cfg, models = metrics["config"], metrics["models"]
names, forget = class_names(metrics), metrics["forget_classes"]
methods = unlearned_models(metrics)
if not methods:
    st.error("This run holds no unlearned model: every method failed.")
    for name, message in metrics.get("errors", {}).items():
        st.error(f"{name}: {message}")
    st.stop()
method = st.radio("Unlearned model", methods, horizontal=True)
st.caption(
    f"{cfg['dataset']} / {cfg['model']}, forget {', '.join(f'{c} ({names[c]})' for c in forget)}, "
    f"seeds {cfg.get('seeds')}, device {cfg.get('device_used')}"
)
trio = {k: models[k] for k in ("original", method, "retrained") if k in models}

st.subheader("Numbers")
st.dataframe(charts.summary_text(charts.summary_table(models)), width="stretch")
for name, message in metrics.get("errors", {}).items():
    st.warning(f"{name} failed: {message}")

history = models[method].get("history") or []
if charts.calibration_trace(history):
    st.subheader("How the step size was chosen")
    st.plotly_chart(charts.calibration_figure(history), width="stretch")
    st.caption(
        "The impair learning rate that forgets a class without wrecking the others depends on how the model was "
        "trained, so for a model of unknown recipe UNSIR tries several and keeps the gentlest that forgets. It never "
        "looks at the forget class: it holds out some retained training images, pushes the ones the original finds "
        "most like the forget class until the original calls them that class (the *probes*), and counts how many "
        "probes each trial still recognises (the forgetting signal, 0 = none). A rate is kept when no probe "
        "survives and the held-out retained accuracy stays near the original's (dashed)."
    )

outputs = [shown for shown in present.measured(trio, names, forget, "outputs") if shown.figures]
for row in range(0, len(outputs), 2):
    for col, shown in zip(st.columns(2), outputs[row : row + 2], strict=False):
        for fig in shown.figures:
            col.plotly_chart(fig, width="stretch")
        col.caption(shown.teaching)
if missing := present.not_measured(trio, "outputs"):
    st.info(f"This run did not measure: {', '.join(missing)}.")

st.subheader("Inside the model")
inside_shown = present.measured(trio, names, forget, "inside")
for shown in inside_shown:
    for fig in shown.figures:
        st.plotly_chart(fig, width="stretch")
    st.caption(shown.teaching + ("" if shown.figures else " (in the table above)"))
if not inside_shown:
    st.info(
        "This run looked at the outputs only. To see inside the models, choose "
        f"{', '.join(present.not_measured(trio, 'inside'))} among the metrics on the Unlearn page (they take longer)."
    )

st.subheader("GradCAM")
try:
    data_key = run_data(cfg)
    data = load_data(*data_key)
except UnsirError as err:
    st.warning(
        f"This run's data set ({cfg['dataset']}) cannot be loaded here, so there are no heatmaps: {user_message(err)}"
    )
    st.stop()
c1, c2 = st.columns(2)
per_group = c1.slider("Images per group", 1, 8, 4)
sample_seed = c2.number_input("Sample seed", min_value=0, value=0, step=1, help="which test images are drawn")
gen = torch.Generator().manual_seed(int(sample_seed))
is_forget = torch.isin(data.test.labels, torch.tensor(forget))
groups = {}
for title, mask in (("Forget-class images", is_forget), ("Retained-class images", ~is_forget)):
    idx = mask.nonzero().squeeze(1)
    groups[title] = idx[torch.randperm(len(idx), generator=gen)[:per_group]]

checkpoints = run_checkpoints(choice, metrics)
available = {}
for k in trio:
    path = checkpoints.get(k)
    if not (path and path.exists()):
        st.warning(f"The {k} model's checkpoint is not on this machine.")
        continue
    try:
        model_at(path, cfg["model"], data_key)  # fails here, with the reason, for a checkpoint that does not fit
    except UnsirError as err:
        st.warning(f"The {k} model cannot be loaded: {user_message(err).replace(str(path), 'its checkpoint')}")
    else:
        available[k] = path
for title, idx in groups.items():
    st.markdown(f"**{title}** (heat for the true class)")
    images, labels = data.test.images[idx], data.test.labels[idx]
    cols = st.columns(1 + len(available))
    cols[0].caption("image")
    for i in range(len(idx)):
        cols[0].image(images[i].permute(1, 2, 0).numpy(), width=96, caption=names[int(labels[i])])
    for col, (k, path) in zip(cols[1:], available.items(), strict=True):
        col.caption(k)
        heat, preds = heatmaps(str(path), path.stat().st_mtime, cfg["model"], data_key, tuple(idx.tolist()))
        for i in range(len(idx)):
            col.image(charts.overlay(images[i].numpy(), heat[i]), width=96, caption=f"pred {names[preds[i]]}")

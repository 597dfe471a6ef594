"""UNSIR demo dashboard on the embedded digits data set (offline, CPU or GPU).

Run: ``streamlit run app.py``. Pick classes to forget, press Unlearn: the original and the
retrained (gold standard) models are trained once and cached, UNSIR unlearns a copy of the
original, and the three models' forget / retain accuracies are shown side by side.
"""

import pandas as pd
import streamlit as st

from unsir_core import list_models, load_dataset, resolve_device
from unsir_core.errors import UnsirError
from unsir_core.experiment import ExperimentConfig, run_experiment

st.set_page_config(page_title="UNSIR unlearning", layout="wide")
st.title("UNSIR: forget a class without looking at it")
st.caption(
    "Zero-glance class unlearning (Tarun et al., TNNLS 2023): error-maximising noise, one impair "
    "epoch and one repair epoch, using only a small subset of the retained classes."
)


@st.cache_resource
def digits():
    return load_dataset("digits")


data = digits()
device = resolve_device("auto")
st.sidebar.write(f"Device: **{device}**")
model_name = st.sidebar.selectbox("Model", list_models(), index=list_models().index("resnet18"))
seed = st.sidebar.number_input("Seed", min_value=0, value=0, step=1)
forget = st.multiselect("Classes to forget", data.classes, default=["3"], help="Digits the model must forget.")

if st.button("Unlearn", type="primary"):
    bar = st.progress(0.0, text="starting")

    def progress(phase: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{phase}: {done}/{total}")

    try:
        cfg = ExperimentConfig(
            dataset="digits", model=model_name, forget=tuple(forget), seed=int(seed), metrics=("predictions",)
        )
        metrics, _ = run_experiment(cfg, progress=progress)
    except UnsirError as err:
        st.error(str(err))
    else:
        bar.progress(1.0, text="done")
        rows = {
            name: {k: m[k] for k in ("forget_acc", "retain_acc", "forget_acc_train", "retain_acc_train")}
            | {"seconds": m.get("seconds")}
            for name, m in metrics["models"].items()
        }
        st.subheader("Accuracy (fraction of test / train samples)")
        st.dataframe(pd.DataFrame(rows).T.style.format("{:.3f}", na_rep="-"))
        st.caption(
            "forget_acc should drop to ~0 (as for the retrained model); retain_acc should stay "
            "near the original's. UNSIR's seconds are its unlearning time only."
        )

"""Models: the data set and the original model (train it, take it from the cache, or upload one)."""

import streamlit as st
import torch

from ui import charts
from ui.job_panel import TRAIN, live_jobs, submit_training
from ui.layout import page_setup, teaching, user_message
from ui.loaders import data_or_stop, original_path, settings_data, test_logits
from ui.state import Keys
from ui.uploads import save_upload
from unsir_core.errors import UnsirError
from unsir_core.metrics import per_class_accuracy

s = page_setup("Models")
teaching(
    "Unlearning starts from an **original model** trained on every class. Here you choose the data set and "
    "architecture (sidebar), then train that model once (it is cached on disk and reused), or upload your own "
    "checkpoint. The per-class accuracy below is the baseline that unlearning must keep for the retained classes "
    "and destroy for the forgotten ones."
)
data = data_or_stop(s)
c1, c2, c3 = st.columns(3)
c1.metric("Classes", data.num_classes)
c2.metric("Training images", len(data.train))
c3.metric("Test images", len(data.test))

st.subheader("Original model")
path = original_path(s, data)
if s.uploaded:
    st.success("Using the uploaded checkpoint.")
elif path.exists():
    st.success(f"A trained {s.model} ({s.recipes} recipe, seed {s.seed}) is in the cache: `{path.name}`.")
else:
    st.info(
        f"No {s.model} trained with the {s.recipes} recipe for {s.dataset} with seed {s.seed} yet (a model of the "
        "other recipe set is a different model: switch the sidebar's recipe to use it). Train it here, or the "
        "Unlearn page trains it."
    )
    if st.button("Train the original model", type="primary"):
        submit_training(s, data)


live_jobs(TRAIN)  # when the training ends, the page reruns and shows the model below

with st.expander("Upload a checkpoint instead"):
    st.caption(
        f"A safetensors file or a PyTorch state_dict (`.pt`, read with weights_only=True) of a **{s.model}** with "
        f"**{data.num_classes}** outputs for {s.dataset}. It is used as the original model for this session."
    )
    upload = st.file_uploader("Checkpoint", type=["safetensors", "pt", "pth"])
    if upload is not None:
        try:
            saved = save_upload(upload.name, upload.getvalue(), s, data)
        except UnsirError as err:
            st.error(f"This checkpoint cannot be used: {user_message(err)}")
        else:
            st.session_state[Keys.UPLOADED] = {"path": str(saved), "for": (s.dataset, s.folder, s.model)}
            st.success(f"Checkpoint {upload.name!r} accepted.")
    if s.uploaded and st.button("Stop using the uploaded checkpoint"):
        st.session_state.pop(Keys.UPLOADED, None)
        st.rerun()

if path.exists():
    logits = test_logits(str(path), path.stat().st_mtime, s.model, settings_data(s))
    acc = per_class_accuracy(torch.from_numpy(logits), data.test.labels, data.num_classes)
    st.metric("Test accuracy", f"{float((logits.argmax(1) == data.test.labels.numpy()).mean()):.3f}")
    st.plotly_chart(charts.per_class_figure(acc, data.classes), width="stretch")
    st.page_link("views/unlearn.py", label="Next: choose classes to forget", icon=":material/arrow_forward:")

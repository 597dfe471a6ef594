"""The dashboard's shared pieces; ``views/`` holds only the page scripts, which use these.

- ``state``: the session-state keys and the sidebar settings every page reads.
- ``layout``: the page table (navigation), the frame every page draws first, help panels, errors.
- ``loaders``: cached data sets, models, predictions and GradCAM heatmaps.
- ``uploads``: checking and storing an uploaded checkpoint.
- ``jobs``: submitting training and experiments to the background queue, and showing them.
- ``runstore``: where the dashboard keeps its runs, and listing them for a page.
- ``charts``, ``report``: plotly charts, tables and the HTML audit report of a run.

Only this package (and the pages) import Streamlit; the core (``unsir_core``) never does.
"""

"""The demo page renders offline and reports bad input in the page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_page_renders_with_the_embedded_data_set():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.multiselect[0].value == ["3"]
    assert "Device" in at.sidebar.markdown[0].value


def test_no_class_chosen_is_reported_in_the_page():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.multiselect[0].set_value([]).run()
    at.button[0].click().run()
    assert not at.exception
    assert "no forget class" in at.error[0].value

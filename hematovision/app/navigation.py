"""The pages, the sidebar every page shares and the footer with the disclaimer and credits."""

from __future__ import annotations

import streamlit as st

from hematovision.app.state import PROFILE_CHOICE_KEY, PROFILES_KEY
from hematovision.core.credits import DATASET_CREDIT, DISCLAIMER

PAGES = (
    ("streamlit_app.py", "Home", ":material/home:"),
    ("pages/1_Classify.py", "Classify", ":material/biotech:"),
    ("pages/8_Review.py", "Review and report", ":material/fact_check:"),
    ("pages/2_Explain.py", "Explain", ":material/visibility:"),
    ("pages/3_Model_performance.py", "Model performance", ":material/monitoring:"),
    ("pages/4_Lab_profile.py", "Lab profile", ":material/tune:"),
    ("pages/5_Atlas.py", "Atlas", ":material/menu_book:"),
    ("pages/6_Quiz.py", "Quiz", ":material/quiz:"),
    ("pages/7_Lecture.py", "Lecture", ":material/co_present:"),
)


def navigation() -> None:
    with st.sidebar:
        for script, label, icon in PAGES:
            st.page_link(script, label=label, icon=icon)
        st.divider()
        names = ["none (the shipped model)", *st.session_state.get(PROFILES_KEY, {})]
        if len(names) > 1:
            # The choice lives under its own key, not the widget's: Streamlit drops a widget's state when
            # another page is shown, and the profile must follow the user from page to page.
            chosen = st.session_state.get(PROFILE_CHOICE_KEY, names[0])
            index = names.index(chosen) if chosen in names else 0
            st.session_state[PROFILE_CHOICE_KEY] = st.selectbox(
                "Lab profile", names, index=index, help="Made on the Lab profile page"
            )
            st.divider()


def footer() -> None:
    st.divider()
    st.caption(DISCLAIMER)
    st.caption(DATASET_CREDIT)

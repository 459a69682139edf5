"""The pages in the sidebar's order, the sidebar they share and the footer with the disclaimer and credits."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from hematovision.app.state import PROFILE_CHOICE_KEY, PROFILES_KEY
from hematovision.core.credits import DATASET_CREDIT, DISCLAIMER


@dataclass(frozen=True)
class PageEntry:
    script: str
    title: str
    icon: str
    #: The page's address after the server's, kept from the earlier file-name navigation so that links and
    #: bookmarks still work (None: the home page, at the server's address).
    url_path: str | None


PAGES = (
    PageEntry("pages/0_Home.py", "Home", ":material/home:", None),
    PageEntry("pages/1_Classify.py", "Classify", ":material/biotech:", "Classify"),
    PageEntry("pages/8_Review.py", "Review and report", ":material/fact_check:", "Review"),
    PageEntry("pages/2_Explain.py", "Explain", ":material/visibility:", "Explain"),
    PageEntry("pages/3_Model_performance.py", "Model performance", ":material/monitoring:", "Model_performance"),
    PageEntry("pages/4_Lab_profile.py", "Lab profile", ":material/tune:", "Lab_profile"),
    PageEntry("pages/5_Atlas.py", "Atlas", ":material/menu_book:", "Atlas"),
    PageEntry("pages/6_Quiz.py", "Quiz", ":material/quiz:", "Quiz"),
    PageEntry("pages/7_Lecture.py", "Lecture", ":material/co_present:", "Lecture"),
)


def pages() -> list[st.Page]:
    return [
        st.Page(e.script, title=e.title, icon=e.icon, url_path=e.url_path, default=e.url_path is None) for e in PAGES
    ]


def profile_choice() -> None:
    """The sidebar's lab-profile choice, once the session has a profile: it applies on every page."""
    names = ["none (the shipped model)", *st.session_state.get(PROFILES_KEY, {})]
    if len(names) < 2:
        return
    # The choice lives under its own key, not the widget's: Streamlit drops a widget's state when
    # another page is shown, and the profile must follow the user from page to page.
    chosen = st.session_state.get(PROFILE_CHOICE_KEY, names[0])
    index = names.index(chosen) if chosen in names else 0
    st.session_state[PROFILE_CHOICE_KEY] = st.sidebar.selectbox(
        "Lab profile", names, index=index, help="Made on the Lab profile page"
    )
    profile = st.session_state.get(PROFILES_KEY, {}).get(st.session_state[PROFILE_CHOICE_KEY])
    if profile is not None and not profile.applied:
        st.sidebar.caption("Chosen but not used: on its own cells it did not beat the model (see *Lab profile*).")


def footer() -> None:
    st.divider()
    st.caption(DISCLAIMER)
    st.caption(DATASET_CREDIT)

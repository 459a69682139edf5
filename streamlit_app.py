"""HematoVision's entry point (`streamlit run streamlit_app.py`): the pages, the sidebar they share, then the
page the visitor chose. Each page is a script in pages/."""

import streamlit as st

from hematovision.app import navigation

st.set_page_config(page_title="HematoVision", page_icon=":material/bloodtype:", layout="wide")
page = st.navigation(navigation.pages())
navigation.profile_choice()
page.run()

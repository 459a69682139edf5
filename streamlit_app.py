"""HematoVision's entry point: the pages, the sidebar they share, then the page the visitor chose. Each page is a
script in pages/. Start it with `make run` (`python -m hematovision.cli.serve`), which also makes a page's own
address (/Classify) open the app as laid out here."""

import streamlit as st

from hematovision.app import navigation

st.set_page_config(page_title="HematoVision", page_icon=":material/bloodtype:", layout="wide")
page = st.navigation(navigation.pages())
navigation.profile_choice()
page.run()

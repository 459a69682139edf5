"""The dashboard's Streamlit layer: the only part of the library that imports Streamlit (the figures, tables and
captions beside it are pure Python, testable without it)."""

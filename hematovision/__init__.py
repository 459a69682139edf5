"""HematoVision: classify and explain microscope images of single blood cells.

Pure-Python library behind the Streamlit dashboard and the command-line tools.
Only ``hematovision.app`` imports Streamlit; the rest is pure Python.
"""

__version__ = "0.1.0"

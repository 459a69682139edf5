"""Offline training pipeline: data -> transfer-learned model -> artifacts in models/. Never imports Streamlit."""

"""DeepR Studio: streamlit run app/main.py"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

import streamlit as st  # noqa: E402

from app import dashboard  # noqa: E402

st.set_page_config(page_title="DeepR Studio", page_icon="🧠", layout="wide")
dashboard.render()

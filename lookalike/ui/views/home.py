"""The app's front page: a study link goes to Participate, the organiser to Compare."""

from __future__ import annotations

import streamlit as st

from lookalike.ui import kit

params = st.query_params.to_dict()
if params.get("study"):
    st.switch_page("views/participate.py", query_params=params)
if kit.is_admin():
    st.switch_page("views/compare.py")
st.title("lookalike")
st.write("Taking part in a study? Open the link you were given (it contains `?study=...`).")
kit.require_admin()

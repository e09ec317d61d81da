"""The Streamlit entry point (``lookalike ui`` runs ``streamlit run`` on this file).

Participants see only the Participate page (no navigation); the organiser, once the admin token
is known (``?token=`` or the token field of an admin page), sees every page in the sidebar.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from lookalike.ui import kit

HERE = Path(__file__).parent / "views"

kit.remember_token()
admin = kit.is_admin()
participate = st.Page(HERE / "participate.py", title="Participate", icon=":material/how_to_reg:",
                      url_path="participate")
pages = [st.Page(HERE / "home.py", title="Home", icon=":material/home:", default=True, visibility="hidden"),
         st.Page(HERE / "compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
         st.Page(HERE / "library.py", title="Library", icon=":material/photo_library:", url_path="library"),
         st.Page(HERE / "design.py", title="Design a study", icon=":material/edit_note:", url_path="design"),
         participate,
         st.Page(HERE / "results.py", title="Results", icon=":material/bar_chart:", url_path="results")]
page = st.navigation(pages, position="sidebar" if admin else "hidden")
st.set_page_config(page_title="lookalike" if admin else "Photo study",
                   layout="wide" if admin and page.url_path != "participate" else "centered")
page.run()

"""Streamlit helpers the pages share: the cached services, the admin gate, errors as messages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from lookalike.errors import LookalikeError
from lookalike.ui.services import Services

log = logging.getLogger("lookalike.ui")
TOKEN_KEY = "admin_token"


@st.cache_resource(show_spinner="Opening the library...")
def _services(library: str, db: str, token: str, url: str) -> Services:
    return Services.open(library or None, db or None, token or None, url or None)


def services() -> Services:
    """One :class:`Services` per process and configuration (``st.cache_resource``)."""
    import os

    from lookalike.ui import services as sv

    return _services(os.environ.get(sv.LIBRARY_ENV, ""), os.environ.get(sv.DB_ENV, ""),
                     os.environ.get(sv.TOKEN_ENV, ""), os.environ.get(sv.URL_ENV, ""))


def remember_token() -> None:
    """Keep a ``?token=`` from the URL in the session (later pages of the session need no URL token)."""
    token = st.query_params.get("token")
    if token and st.session_state.get("url_token") != token:  # a token typed in later wins
        st.session_state["url_token"] = st.session_state[TOKEN_KEY] = token


def is_admin() -> bool:
    try:
        return services().is_admin(st.session_state.get(TOKEN_KEY))
    except Exception:  # noqa: BLE001 - a library that does not open is reported by the page
        return False


def require_admin() -> Services:
    """The services for an admin page, or a refusal with a token field (and the page stops)."""
    svc = services()
    token = st.session_state.get(TOKEN_KEY)
    if svc.is_admin(token):
        return svc
    if token:
        st.error("That admin token is wrong. This page is for the study's organiser.")
    else:
        st.warning("This page is for the study's organiser: it needs the admin token "
                   "(printed by `lookalike ui`, or in the admin link's `?token=`).")
    entered = st.text_input("Admin token", type="password", key="token_input")
    if entered and entered != token:
        st.session_state[TOKEN_KEY] = entered
        st.rerun()
    st.stop()
    raise AssertionError("unreachable")


def app_root() -> str:
    """``scheme://host:port`` the browser reached the app at (for links), or ``""``."""
    from urllib.parse import urlsplit

    url = st.context.url or ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


@contextmanager
def guard(what: str = "This page") -> Iterator[None]:
    """Errors become a message on the page (the full traceback only goes to the server's log)."""
    try:
        yield
    except LookalikeError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001
        log.exception("%s failed", what)
        st.error(f"{what} failed: {type(exc).__name__}: {exc}")

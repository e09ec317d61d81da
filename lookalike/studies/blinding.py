"""Opaque names for what participants see: image tokens, letters, link ids, admin tokens.

An image token is an HMAC-SHA256 of the study's secret and the content id, so it is stable within
a study (a resumed participant sees the same tokens), differs between studies, and reveals nothing
about the image, its path or the metric that retrieved it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

LETTERS = string.ascii_uppercase


def new_secret() -> str:
    return secrets.token_hex(32)


def new_id(nbytes: int = 12) -> str:
    """A random URL-safe id (links, participant tokens, admin tokens)."""
    return secrets.token_urlsafe(nbytes)


def image_token(secret: str, content_id: int) -> str:
    digest = hmac.new(secret.encode(), f"image:{int(content_id)}".encode(), hashlib.sha256).digest()
    return "i" + base64.urlsafe_b64encode(digest[:15]).decode()


def letter(position: int) -> str:
    """Position 0 -> ``A``, 1 -> ``B``..."""
    return LETTERS[position]


def position_of(choice: str, n: int) -> int:
    """A letter (``A``/``a``), or a 1-based number (``"1"``), or ``left``/``right`` -> 0-based
    position among ``n``; ``ValueError`` when it is not one of them."""
    c = choice.strip()
    if c.lower() in ("left", "right") and n == 2:
        return 0 if c.lower() == "left" else 1
    if c.isdigit() and 1 <= int(c) <= n:
        return int(c) - 1
    if len(c) == 1 and c.upper() in LETTERS[:n]:
        return LETTERS.index(c.upper())
    raise ValueError(f"choice {choice!r} is not one of {', '.join(LETTERS[:n])}")


def same_token(a: str, b: str) -> bool:
    """Constant-time comparison for admin tokens."""
    return hmac.compare_digest(a.encode(), b.encode())

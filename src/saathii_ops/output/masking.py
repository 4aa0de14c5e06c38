"""Passwords never shown: in error lines, log lines, tracebacks (pure text, no driver)."""

from __future__ import annotations

import re

# `user:password@` in any URL-like token, parsed or not (`postgres:pw@host/db` has no //)
_USERINFO_PASSWORD = r"(?P<user>(?:[A-Za-z][\w+.-]*://)?[^\s:/@'\"]*):(?P<secret>(?!/)[^\s'\"]*)@"
# `?password=`, `&sslpassword=`, libpq's `password=` (quoted or not), PGPASSWORD=; the
# value ends before a space, `&`, `#` or the punctuation of the sentence around it
_KEY_PASSWORD = (
    r"(?P<key>\b\w*pass(?:word|wd)?\w*\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&#;'\"]*[^\s&#;'\":,.)])"
)


def mask_secrets(text: str) -> str:
    """Hide every password in `text`, in any form a database or Redis URL may carry it."""
    # re caches compiled patterns: compiled on the first error, not at start-up
    text = re.sub(_USERINFO_PASSWORD, lambda m: f"{m['user']}:***@", text)
    return re.sub(_KEY_PASSWORD, lambda m: f"{m['key']}***", text, flags=re.IGNORECASE)


def first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__

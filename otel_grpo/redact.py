"""The one place secrets are taken out of text before it is logged, put on a span or written.

A URL can carry a secret in two places: its userinfo (``http://user:PASSWORD@host``)
and its query string (``?api-key=...``). :func:`redact_url` removes both (the password
and every query value), keeping what a user needs to recognise the endpoint: scheme,
host, port and path. :func:`redact_text` does the same to every URL inside a longer
text (an exception message, a command line) and to any extra known secret values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"

_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` without its password and query values; unparsable input is returned as ``REDACTED``."""
    if not isinstance(url, str):
        return REDACTED
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else f"{REDACTED}@{hostport}"
            if not user:
                netloc = f"{REDACTED}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(key, REDACTED) for key, _ in pairs], safe=REDACTED) if pairs else REDACTED
        fragment = REDACTED if parts.fragment else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        return REDACTED


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL in it redacted and every value in ``secrets`` replaced."""
    result = _URL_RE.sub(lambda match: redact_url(match.group(0)), str(text))
    for secret in secrets:
        if secret and len(secret) >= 4:
            result = result.replace(secret, REDACTED)
    return result


def url_has_secret(url: str) -> bool:
    """True when ``url`` carries userinfo or a query string (something to redact)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return "@" in parts.netloc or bool(parts.query)


__all__ = ["REDACTED", "redact_text", "redact_url", "url_has_secret"]

"""The one place secrets are taken out of text before it is logged, put on a span or written.

A URL can carry a secret in two places: its userinfo (``http://user:PASSWORD@host``)
and its query string (``?api-key=...``). :func:`redact_url` removes both (the password
and every query value), keeping what a user needs to recognise the endpoint: scheme,
host, port and path. :func:`redact_text` does the same to every URL inside a longer
text (an exception message, a command line), to scheme-less ``user:password@host``
targets (gRPC), to the query of a bare request path (``/v1/metrics?token=...``, as
HTTP client errors print it) and to any extra known secret values.
:func:`url_secrets` lists the secret parts of a URL, for callers that must also hide
them where they appear out of URL context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"

_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
# "user:password@" without a scheme, e.g. a gRPC target "u:p@collector:4317".
_BARE_USERINFO_RE = re.compile(r"(?P<user>[^\s/@:'\"<>()\[\]]+):(?P<password>[^\s/@'\"<>]+)@(?=[\w\[])")
# The query of a request path as HTTP clients print it: "url: /v1/metrics?api-key=...".
_PATH_QUERY_RE = re.compile(r"(?P<path>/[^\s?#'\"<>]*)\?(?P<query>[^\s#'\"<>]+)")
_MIN_SECRET_LEN = 4


def _redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(key, REDACTED) for key, _ in pairs], safe=REDACTED) if pairs else REDACTED


def redact_url(url: str, *, endpoint_only: bool = False) -> str:
    """``url`` without its password and query values; unparsable input is returned as ``REDACTED``.

    Args:
        url: the URL to show.
        endpoint_only: drop userinfo, query and fragment altogether instead of masking
            them, leaving ``scheme://host[:port]/path``.
    """
    if not isinstance(url, str):
        return REDACTED
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            if endpoint_only:
                netloc = hostport
            elif ":" in userinfo and user:
                netloc = f"{user}:{REDACTED}@{hostport}"
            else:
                netloc = f"{REDACTED}@{hostport}"
        if endpoint_only:
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        query = _redact_query(parts.query) if parts.query else ""
        fragment = REDACTED if parts.fragment else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        return REDACTED


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of ``url``: its password (or its whole userinfo when that has no
    password, as in ``http://TOKEN@host``), every query value and the fragment."""
    if not isinstance(url, str) or not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        found.append(password if colon and user else userinfo)
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    if parts.fragment:
        found.append(parts.fragment)
    return [secret for secret in found if secret]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL in it redacted and every value in ``secrets`` replaced.

    Values shorter than 4 characters are not replaced (they would mangle ordinary
    words); a URL's own secrets are masked wherever the URL appears.
    """
    result = _URL_RE.sub(lambda match: redact_url(match.group(0)), str(text))
    result = _BARE_USERINFO_RE.sub(lambda match: f"{match.group('user')}:{REDACTED}@", result)
    result = _PATH_QUERY_RE.sub(lambda match: f"{match.group('path')}?{_redact_query(match.group('query'))}", result)
    for secret in sorted({str(s) for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LEN:
            result = result.replace(secret, REDACTED)
    return result


def url_has_secret(url: str) -> bool:
    """True when ``url`` carries userinfo or a query string (something to redact)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return "@" in parts.netloc or bool(parts.query)


__all__ = ["REDACTED", "redact_text", "redact_url", "url_has_secret", "url_secrets"]

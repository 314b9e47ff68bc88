"""Why an online WandB run cannot start, found before trying wherever the cause is certain.

``wandb.init(mode="online")`` with no API key fails after a couple of seconds with a bare
``UsageError`` (or, on a terminal, asks for a key); against a refused port or an unknown
host it retries until ``init_timeout_s``. Both causes can be known at once: the API key is
looked up the way wandb looks it up (``WANDB_API_KEY``, ``wandb login``'s netrc entry for
the base URL, an identity token file, ``wandb.login()`` earlier in the process), and one TCP
connection to the base URL tells a refused port, an unknown host or an unreachable network
apart. Each cause comes with its fix; the base URL is shown redacted
(:func:`otel_grpo.redact.redact_url`).

Nothing here raises: a wandb whose internals differ, or a proxy in the way, gives "unknown",
and ``wandb.init`` is tried as before.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from otel_grpo.redact import redact_text, redact_url

#: wandb's default base URL, when its settings cannot be read.
DEFAULT_BASE_URL = "https://api.wandb.ai"
API_KEY_ENV = "WANDB_API_KEY"
_CHECK_SERVER = "check WANDB_BASE_URL (or `wandb login --host`) and that the WandB server is up and reachable"


@dataclass(frozen=True)
class OnlineProblem:
    """Why no online run: ``cause`` (what went wrong, naming the redacted base URL) and ``fix``."""

    cause: str
    fix: str


def base_url() -> str:
    """The WandB server URL wandb would use (``WANDB_BASE_URL``, ``wandb login --host``, or its default)."""
    try:
        from wandb.sdk import wandb_setup

        url = wandb_setup.singleton().settings.base_url
    except Exception:  # noqa: BLE001 - another wandb: the environment variable, else the default
        url = None
    return str(url or os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL)


def shown(url: str) -> str:
    """``url`` as a message shows it: no password, no query values."""
    return redact_url(url)


def api_key_problem(url: str) -> OnlineProblem | None:
    """No API key for ``url``, or one wandb rejects by its form; None when there is one (or when unknown)."""
    try:
        from wandb.errors import AuthenticationError
        from wandb.sdk.lib.wbauth import authenticate
    except ImportError:
        return None
    try:
        auth = authenticate.authenticate_session(host=url, source="otel-grpo", prompt=False, update_session=False)
    except AuthenticationError as exc:
        detail = redact_text(str(exc).splitlines()[0] if str(exc) else "", [os.environ.get(API_KEY_ENV, "")])
        return OnlineProblem(
            f"the WandB API key is not valid ({detail})",
            f"set {API_KEY_ENV} to your key or run `wandb login --relogin`",
        )
    except Exception:  # noqa: BLE001 - wandb internals changed: let wandb.init decide
        return None
    if auth is None:
        return OnlineProblem(f"no WandB API key for {shown(url)}", f"run `wandb login` or set {API_KEY_ENV}")
    return None


def _proxied(url: str, host: str) -> bool:
    """Does a proxy carry requests to ``url`` (then a direct connection proves nothing)?"""
    try:
        scheme = urlsplit(url).scheme
        return bool(urllib.request.getproxies().get(scheme)) and not urllib.request.proxy_bypass(host)
    except Exception:  # noqa: BLE001
        return True


def connection_problem(url: str, timeout_s: float) -> OnlineProblem | None:
    """Open one TCP connection to ``url``'s host and port: a refused port, an unknown host, an
    unreachable network or no connection within ``timeout_s`` is the cause; None when it connects
    (or when a proxy is in the way, or the URL has no host)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not host or _proxied(url, host):
        return None
    where = shown(url)
    try:
        with socket.create_connection((host, port), timeout=max(timeout_s, 0.1)):
            return None
    except socket.gaierror as exc:
        return OnlineProblem(f"cannot resolve the host of {where} (DNS: {exc.strerror or exc})", _CHECK_SERVER)
    except ConnectionRefusedError:
        return OnlineProblem(f"{where} refused the connection", _CHECK_SERVER)
    except TimeoutError:
        return OnlineProblem(f"no connection to {where} within {timeout_s:.0f}s (timeout)", _CHECK_SERVER)
    except OSError as exc:
        return OnlineProblem(f"cannot connect to {where} ({exc.strerror or type(exc).__name__})", _CHECK_SERVER)


def init_problem(url: str, timeout_s: float, exc: BaseException) -> OnlineProblem:
    """``wandb.init`` failed although the server accepted a connection (it never answered, or refused the key)."""
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    detail = redact_text(f"{type(exc).__qualname__}: {first_line}" if first_line else type(exc).__qualname__)
    detail = redact_text(detail, [os.environ.get(API_KEY_ENV, "")])
    return OnlineProblem(
        f"{shown(url)} accepted the connection but no online run started within {timeout_s:.0f}s ({detail})",
        "check that the WandB server there answers, and your API key",
    )


def problem_before_trying(timeout_s: float) -> tuple[str, OnlineProblem | None]:
    """The base URL, and the certain reason an online run cannot start (no API key, then the
    connection), or None: then ``wandb.init`` is tried."""
    url = base_url()
    return url, api_key_problem(url) or connection_problem(url, timeout_s)


def run_directory(run: Any) -> str:
    """The directory of ``run`` (``.../wandb/offline-run-<time>-<id>``; ``run.dir`` is its ``files``)."""
    try:
        files = str(run.dir)
    except Exception:  # noqa: BLE001
        return "?"
    files = os.path.abspath(files)
    return os.path.dirname(files) if os.path.basename(files) == "files" else files

"""A local OpenAI-compatible judge server imitating vLLM serving gpt-oss-120b.

Built on the standard library (:class:`http.server.ThreadingHTTPServer`), so it needs
no extra dependency. Endpoints:

* ``GET /v1/models``: the served model (``owned_by: "vllm"``);
* ``GET /health``: 200 with an empty body;
* ``POST /v1/chat/completions``: an OpenAI chat request (``model``, ``messages``,
  ``temperature``, ``max_tokens``/``max_completion_tokens``, optional ``stream`` and
  ``stream_options.include_usage``), answered like vLLM, streamed as SSE on request.

Prompt convention
-----------------
The judge is deterministic. It reads the **last user message** (falling back to all
messages together) and looks for the two fields, case-insensitively:

* tags ``<prediction>...</prediction>`` and ``<ground_truth>...</ground_truth>``
  (also ``<ground-truth>``, ``<groundtruth>``, ``<reference>``), which win; else
* labelled lines or blocks at the start of a line, optionally decorated with markdown
  (``**Prediction:**``, ``- Ground truth:``)::

      Question: ...
      Prediction: 18
      Ground truth: Janet sells 16 - 3 - 4 = 9 duck eggs ... #### 18

  A block runs from its label to the next known label line (``Question:``,
  ``Problem:``, ``Context:``, ``Prediction:``, ``Ground truth:``, ``Reference answer:``
  ...) or the end of the message, so multi-line values (code, worked solutions) work.
  Aliases: ``Predicted answer``/``Predicted solution``/``Model answer``/``Model's
  answer``/``Student answer``/``Candidate answer`` for the prediction; ``Ground_truth``
  /``Reference``/``Reference answer``/``Reference solution``/``Gold answer``/
  ``Expected answer``/``Correct answer`` for the ground truth. The last occurrence
  wins. A block also ends at a line mentioning ``<true_false>`` and at a blank line
  (unless inside a ``` fence or followed by an indented or code-like line); when the
  label line itself carries a value, that line alone is tried too.

The verdict is True when the SQuAD-normalised strings are equal, the numbers extracted
from both agree, the token F1 is at least 0.8, or the choice letters (A-E) agree; it is
False otherwise, and also when either field is missing. The reply's ``content`` ends
with ``<true_false>True</true_false>`` (or ``False``); ``reasoning_content`` holds a
short deterministic reasoning text. If ``max_tokens`` is smaller than the reply, the
content is ``null`` with ``finish_reason: "length"``, as gpt-oss does.

A ``model`` other than the served one is answered with 404, like vLLM.

Fault injection
---------------
:class:`FaultConfig` picks an outcome for every chat-completion request: ``ok``,
``http_500``/``http_503`` (an HTTP error with an OpenAI-style error body), ``timeout``
(hang ``hang_s`` seconds, then answer: the client times out), ``slow`` (answer after
``slow_s`` seconds), ``unparsable`` (content with no verdict) or ``null_content``
(``content: null``, ``finish_reason: "length"``). With ``schedule`` set, request
number *i* gets ``schedule[i % len(schedule)]``; otherwise one draw of
``random.Random(seed)`` per request is compared with the cumulative rates. The header
``X-Judge-Fault: <outcome>`` overrides both for one request (which still advances the
counter and the draw, so the sequence of the other requests is unchanged).

Streaming sends ``data: {chat.completion.chunk}`` events (role, ``reasoning_content``
deltas, ``content`` deltas) and ``data: [DONE]``; the final chunk carries the
``finish_reason`` and, with ``stream_options.include_usage``, the ``usage``.

Run it with ``python -m otel_grpo.tools.demo.judge_server --port 8002`` (``main``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_grpo.tools.demo import judge_protocol as proto

__all__ = [
    "DEFAULT_MODEL",
    "OUTCOMES",
    "FaultConfig",
    "JudgeServer",
    "main",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-oss-120b"

#: Every outcome a request can be served with (schedule values and header values).
OUTCOMES: tuple[str, ...] = (
    "ok",
    "http_500",
    "http_503",
    "timeout",
    "slow",
    "unparsable",
    "null_content",
)

_ERROR_TYPES = {
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


@dataclass
class FaultConfig:
    """Which faults the judge server injects, and how often.

    Rates are fractions of chat-completion requests in ``[0, 1]`` and must sum to at
    most 1. ``schedule``, when set, overrides the rates with a cyclic list of outcomes
    (values from :data:`OUTCOMES`) indexed by request number.
    """

    error_rate: float = 0.0
    error_status: int = 500
    timeout_rate: float = 0.0
    hang_s: float = 30.0
    slow_rate: float = 0.0
    slow_s: float = 2.0
    unparsable_rate: float = 0.0
    null_content_rate: float = 0.0
    seed: int = 0
    schedule: list[str] | None = None

    def __post_init__(self) -> None:
        """Validate rates, status, delays and schedule."""
        rates = self._rates()
        for name, rate in rates:
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {rate}")
        if sum(rate for _, rate in rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        if not 400 <= int(self.error_status) <= 599:
            raise ValueError(f"error_status must be an HTTP error, got {self.error_status}")
        if self.hang_s < 0 or self.slow_s < 0:
            raise ValueError("hang_s and slow_s must be >= 0")
        if self.schedule is not None:
            self.schedule = [str(s).strip() for s in self.schedule if str(s).strip()]
            bad = [s for s in self.schedule if s not in OUTCOMES]
            if bad:
                raise ValueError(f"unknown schedule outcomes {bad}; expected {OUTCOMES}")
            if not self.schedule:
                self.schedule = None

    def _rates(self) -> list[tuple[str, float]]:
        """(name, rate) pairs in the order the cumulative draw uses."""
        return [
            ("error_rate", float(self.error_rate)),
            ("timeout_rate", float(self.timeout_rate)),
            ("slow_rate", float(self.slow_rate)),
            ("unparsable_rate", float(self.unparsable_rate)),
            ("null_content_rate", float(self.null_content_rate)),
        ]

    def outcome_for_draw(self, u: float) -> str:
        """Map a uniform draw in ``[0, 1)`` to an outcome by cumulative rates."""
        error_outcome = f"http_{int(self.error_status)}"
        names = [error_outcome, "timeout", "slow", "unparsable", "null_content"]
        edge = 0.0
        for outcome, (_, rate) in zip(names, self._rates(), strict=True):
            edge += rate
            if u < edge:
                return outcome
        return "ok"


class _FaultPicker:
    """Thread-safe, seeded, deterministic outcome selection (one step per request)."""

    def __init__(self, faults: FaultConfig) -> None:
        self._faults = faults
        self._rng = random.Random(faults.seed)
        self._counter = 0
        self._lock = threading.Lock()

    def next(self) -> tuple[int, str]:
        """Return ``(request_index, outcome)`` for the next chat request."""
        with self._lock:
            index = self._counter
            self._counter += 1
            schedule = self._faults.schedule
            if schedule:
                return index, schedule[index % len(schedule)]
            return index, self._faults.outcome_for_draw(self._rng.random())


class _Stats:
    """Thread-safe counters of served outcomes and verdicts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"total": 0, "http_requests": 0}
        for outcome in OUTCOMES:
            self._counts[outcome] = 0
        self._counts.update(bad_request=0, verdict_true=0, verdict_false=0)

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _JudgeHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the judge's state for its handlers."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog: hundreds of concurrent judge calls, like vLLM takes

    def __init__(self, address: tuple[str, int], judge: JudgeServer) -> None:
        self.judge = judge
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup of the host (slow offline)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log handler errors with ``logging``; dropped connections only at DEBUG."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("connection from %s dropped: %s", client_address, exc)
        else:
            logger.exception("error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler for the judge's OpenAI-compatible endpoints."""

    protocol_version = "HTTP/1.1"
    timeout = 300  # idle keep-alive connections are dropped after this many seconds
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "vllm-demo-judge"
    sys_version = ""
    server: _JudgeHTTPServer

    # -- plumbing ------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        """Route access logs to ``logging`` at DEBUG instead of stderr."""
        logger.debug("%s - %s", self.address_string(), format % args)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_error(self, status: int, message: str, err_type: str | None = None) -> None:
        if err_type is None:
            try:
                phrase = HTTPStatus(status).phrase.replace(" ", "")
            except ValueError:
                phrase = "HTTP"
            err_type = _ERROR_TYPES.get(status, f"{phrase}Error")
        self._send_json(status, proto.error_body(message, err_type, status))

    def _guard(self, fn: Any) -> None:
        self.server.judge._stats.add("http_requests")
        try:
            fn()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            logger.debug("client went away before the reply was written")
            self.close_connection = True

    # -- routes --------------------------------------------------------------------
    def do_GET(self) -> None:
        """Serve ``/v1/models`` and ``/health``."""
        self._guard(self._get)

    def do_POST(self) -> None:
        """Serve ``/v1/chat/completions``."""
        self._guard(self._post)

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def _get(self) -> None:
        path = self._path()
        judge = self.server.judge
        if path in ("/v1/models", "/models"):
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": judge.model,
                            "object": "model",
                            "created": judge.created,
                            "owned_by": "vllm",
                            "root": judge.model,
                            "parent": None,
                            "max_model_len": 131072,
                        }
                    ],
                },
            )
        elif path in ("/health", "/v1/health"):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/v1/chat/completions":
            self._send_error(405, "Method Not Allowed", "MethodNotAllowed")
        else:
            self._send_error(404, f"Not Found: {path}", "NotFoundError")

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        return json.loads(raw.decode("utf-8")) if raw else None

    def _bad_request(self, message: str, status: int = 400, err_type: str = "BadRequestError") -> None:
        self.server.judge._stats.add("bad_request")
        self._send_error(status, message, err_type)

    def _post(self) -> None:
        path = self._path()
        judge = self.server.judge
        if path not in ("/v1/chat/completions", "/chat/completions"):
            # Drain the body so the connection stays usable.
            try:
                self._read_json()
            except (ValueError, UnicodeDecodeError):
                pass
            self._send_error(404, f"Not Found: {path}", "NotFoundError")
            return
        try:
            body = self._read_json()
        except (ValueError, UnicodeDecodeError) as exc:
            self._bad_request(f"Invalid JSON body: {exc}")
            return
        if not isinstance(body, dict):
            self._bad_request("The request body must be a JSON object.")
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._bad_request("'messages' must be a non-empty list.")
            return
        model = body.get("model") or judge.model
        if model != judge.model:
            self._bad_request(f"The model `{model}` does not exist.", 404, "NotFoundError")
            return
        header = (self.headers.get("X-Judge-Fault") or "").strip().lower()
        if header and header not in OUTCOMES:
            self._bad_request(f"X-Judge-Fault must be one of {', '.join(OUTCOMES)}")
            return
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            self._bad_request("max_tokens must be a positive integer.")
            return

        index, outcome = judge._picker.next()
        if header:
            outcome = header
        judge._stats.add("total")
        judge._stats.add(outcome)
        logger.debug("request %d served as %s", index, outcome)

        if outcome.startswith("http_"):
            status = int(outcome.split("_", 1)[1])
            self._send_error(status, f"Injected fault: HTTP {status} for request {index}.")
            return
        if outcome == "timeout":
            judge._stopping.wait(judge.faults.hang_s)
        elif outcome == "slow":
            judge._stopping.wait(judge.faults.slow_s)

        reply, judgement = proto.build_reply(messages, outcome, max_tokens)
        if reply.content is not None and outcome != "unparsable":
            judge._stats.add("verdict_true" if judgement.verdict else "verdict_false")
        if body.get("stream"):
            options = body.get("stream_options") or {}
            include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
            self._send_stream(proto.stream_chunks(reply, judge.model, include_usage))
        else:
            self._send_json(200, proto.chat_completion(reply, judge.model))

    def _send_stream(self, chunks: list[dict[str, Any]]) -> None:
        """Send SSE ``data:`` events with chunked transfer encoding, then ``[DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
        for event in events:
            data = event.encode("utf-8")
            self.wfile.write(f"{len(data):X}\r\n".encode("ascii") + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class JudgeServer:
    """A local judge server on a background thread.

    Example::

        with JudgeServer(faults=FaultConfig(schedule=["ok", "http_503"])) as server:
            client = openai.OpenAI(base_url=server.url, api_key="sk-dummy")

    Args:
        host: address to bind; loopback by default (never all interfaces unless asked).
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        model: the served model id.
        faults: fault injection settings.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = DEFAULT_MODEL,
        faults: FaultConfig | None = None,
    ) -> None:
        self.host = host
        self.model = model
        self.faults = faults if faults is not None else FaultConfig()
        self.created = int(time.time())
        self._requested_port = port
        self._picker = _FaultPicker(self.faults)
        self._stats = _Stats()
        self._stopping = threading.Event()
        self._httpd: _JudgeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        if self._httpd is not None:
            return int(self._httpd.server_address[1])
        return self._requested_port

    @property
    def url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:8002/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def stats(self) -> dict[str, int]:
        """Snapshot of counters: ``total`` chat requests, one key per outcome in
        :data:`OUTCOMES`, ``bad_request``, ``verdict_true``/``verdict_false`` and
        ``http_requests`` (every HTTP request, all endpoints)."""
        return self._stats.snapshot()

    def start(self) -> JudgeServer:
        """Bind and serve on a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _JudgeHTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"judge-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("judge server for %s listening on %s", self.model, self.url)
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging requests and close the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        logger.info("judge server stopped")

    def __enter__(self) -> JudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-grpo judge-server",
        description="Local OpenAI-compatible judge imitating vLLM + gpt-oss-120b, with fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--error-status", type=int, default=500)
    parser.add_argument("--timeout-rate", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=30.0)
    parser.add_argument("--slow-rate", type=float, default=0.0)
    parser.add_argument("--slow-s", type=float, default=2.0)
    parser.add_argument("--unparsable-rate", type=float, default=0.0)
    parser.add_argument("--null-content-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--schedule",
        default=None,
        help=f"comma-separated cyclic outcomes, from: {','.join(OUTCOMES)}",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: serve until Ctrl-C. Returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        faults = FaultConfig(
            error_rate=args.error_rate,
            error_status=args.error_status,
            timeout_rate=args.timeout_rate,
            hang_s=args.hang_s,
            slow_rate=args.slow_rate,
            slow_s=args.slow_s,
            unparsable_rate=args.unparsable_rate,
            null_content_rate=args.null_content_rate,
            seed=args.seed,
            schedule=args.schedule.split(",") if args.schedule else None,
        )
    except ValueError as exc:
        parser.error(str(exc))
    server = JudgeServer(host=args.host, port=args.port, model=args.model, faults=faults)
    try:
        server.start()
    except OSError as exc:
        logger.error("cannot bind %s:%s: %s", args.host, args.port, exc)
        return 1
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        logger.info("interrupted; final stats: %s", server.stats)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

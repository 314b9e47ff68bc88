"""The judge server's HTTP side: an OpenAI-compatible handler on a threading HTTP server.

:class:`JudgeHTTPServer` serves ``GET /v1/models``, ``GET /health`` and
``POST /v1/chat/completions`` (plain JSON or SSE) for one :class:`JudgeState`; the
replies themselves are built by :mod:`otel_grpo.tools.demo.judge_protocol`. See
:mod:`otel_grpo.tools.demo.judge_server` for the protocol and the fault outcomes.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_grpo.tools.demo import judge_protocol as proto
from otel_grpo.tools.demo.judge_faults import OUTAGE_RETRY_AFTER_MS, OUTCOMES, FaultConfig, FaultPicker, ServedCounts

# A child of the judge server's logger, so that quieting the judge server (as the demo
# does) quiets its per-request records too.
logger = logging.getLogger("otel_grpo.tools.demo.judge_server.http")


@dataclass
class JudgeState:
    """What every request handler shares: the served model, the faults and the counters."""

    model: str
    created: int
    faults: FaultConfig
    picker: FaultPicker
    counts: ServedCounts
    #: Set when the server stops: wakes requests that hang or are slow on purpose.
    stopping: threading.Event


_ERROR_TYPES = {
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


class JudgeHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the judge's state for its handlers."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog: hundreds of concurrent judge calls, like vLLM takes

    def __init__(self, address: tuple[str, int], judge: JudgeState) -> None:
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
    server: JudgeHTTPServer

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

    def _send_error(
        self, status: int, message: str, err_type: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        if err_type is None:
            try:
                phrase = HTTPStatus(status).phrase.replace(" ", "")
            except ValueError:
                phrase = "HTTP"
            err_type = _ERROR_TYPES.get(status, f"{phrase}Error")
        self._send_json(status, proto.error_body(message, err_type, status), headers)

    def _guard(self, fn: Any) -> None:
        self.server.judge.counts.add("http_requests")
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
        self.server.judge.counts.add("bad_request")
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

        index, outcome, outage = judge.picker.next_with_outage()
        if header:
            outcome, outage = header, False
        judge.counts.add("total")
        judge.counts.add(outcome)
        if outage:
            judge.counts.add("outage")
        logger.debug("request %d served as %s%s", index, outcome, " (outage)" if outage else "")

        if outcome.startswith("http_"):
            status = int(outcome.split("_", 1)[1])
            if outage:  # the gateway in front of the failing judge: "retry soon"
                self._send_error(
                    status,
                    f"Injected outage: HTTP {status} for request {index}.",
                    headers={"Retry-After-Ms": str(OUTAGE_RETRY_AFTER_MS)},
                )
            else:
                self._send_error(status, f"Injected fault: HTTP {status} for request {index}.")
            return
        if outcome == "timeout":
            judge.stopping.wait(judge.faults.hang_s)
        elif outcome == "slow":
            judge.stopping.wait(judge.faults.slow_s)

        reply, judgement = proto.build_reply(messages, outcome, max_tokens)
        if reply.content is not None and outcome != "unparsable":
            judge.counts.add("verdict_true" if judgement.verdict else "verdict_false")
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

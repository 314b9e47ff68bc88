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
(:data:`PROMPT_FORMAT` says it for ``--help`` and the README.) The judge is deterministic.
It reads the **last user message** (falling back to all messages together) and looks
for the two fields, case-insensitively:

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

Outage: :meth:`JudgeServer.set_outage` switches an outage on or off (the demo does it at
the start of each training step of its ``--judge-outage`` window, so the outage follows
the training steps, not the clock). While it is on, every chat request fails, served in
a cycle from ``FaultConfig.outage_outcomes`` (default HTTP 500, HTTP 503, null content);
its HTTP errors carry ``Retry-After-Ms: 20``, so the client's retries fail fast. The
header above still wins for one request.

Streaming sends ``data: {chat.completion.chunk}`` events (role, ``reasoning_content``
deltas, ``content`` deltas) and ``data: [DONE]``; the final chunk carries the
``finish_reason`` and, with ``stream_options.include_usage``, the ``usage``.

Run it with ``python -m otel_grpo.tools.demo.judge_server --port 8002`` (``main``).

The parts: :mod:`.judge_faults` (the fault schedule), :mod:`.judge_http` (the HTTP
handler), :mod:`.judge_protocol` (the judging and the reply bodies); this module is
the server's lifecycle and its command line.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Sequence

from otel_grpo.tools.demo.judge_faults import OUTCOMES, FaultConfig, FaultPicker, ServedCounts
from otel_grpo.tools.demo.judge_http import JudgeHTTPServer, JudgeState

__all__ = [
    "DEFAULT_MODEL",
    "OUTCOMES",
    "FaultConfig",
    "JudgeServer",
    "main",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-oss-120b"

#: How the judge reads a prompt: ``otel-grpo judge-server --help`` prints it, the README repeats it.
PROMPT_FORMAT = """\
prompt format: the judge reads the last user message (else all messages) and finds
the prediction and the ground truth in it, case-insensitively:

  tags, which win:
    <prediction>...</prediction>  <ground_truth>...</ground_truth>
    (also <ground-truth>, <groundtruth>, <reference>)

  else labels at the START OF A LINE, markdown allowed (**Prediction:**, - Ground truth:):
    Question: How many eggs does Janet sell?
    Prediction: 18
    Ground truth: 16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars #### 18

  A label inside a line is not read ("... the prediction: 18" finds nothing).
  A value runs from its label to the next label line (Question:, Problem:, Context:,
  Instructions:, Task:, ...), a line mentioning <true_false>, or a blank line (unless
  inside a ``` fence or followed by an indented or code-like line), so multi-line
  values (code, worked solutions) work. The last occurrence counts (few-shot examples
  come first). Prediction labels: Prediction, Predicted answer, Predicted solution,
  Model answer, Model's answer, Student answer, Candidate answer. Ground-truth labels:
  Ground truth, Reference, Reference answer, Reference solution, Gold answer,
  Expected answer, Correct answer.

verdict: True when the normalised answers are equal, their numbers agree, their token
F1 is at least 0.8, or the chosen options (A-E) agree; False otherwise, and when either
field is missing. The reply's content ends with <true_false>True</true_false> (or False).
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Option defaults shown, and the description and the prompt format printed as written."""


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
        faults = faults if faults is not None else FaultConfig()
        self._state = JudgeState(
            model=model,
            created=int(time.time()),
            faults=faults,
            picker=FaultPicker(faults),
            counts=ServedCounts(),
            stopping=threading.Event(),
        )
        self._requested_port = port
        self._httpd: JudgeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def model(self) -> str:
        """The served model id."""
        return self._state.model

    @property
    def faults(self) -> FaultConfig:
        """The fault injection settings."""
        return self._state.faults

    @property
    def created(self) -> int:
        """When the server was made (Unix seconds), as ``/v1/models`` reports it."""
        return self._state.created

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
        :data:`OUTCOMES`, ``bad_request``, ``verdict_true``/``verdict_false``,
        ``outage`` (requests an outage failed) and ``http_requests`` (every HTTP
        request, all endpoints)."""
        return self._state.counts.snapshot()

    @property
    def outage(self) -> bool:
        """Is an outage on (every chat request fails)?"""
        return self._state.picker.outage

    def set_outage(self, on: bool) -> None:
        """Switch the outage on (every chat request fails, see the module doc) or off."""
        self._state.picker.set_outage(on)

    def start(self) -> JudgeServer:
        """Bind and serve on a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._state.stopping.clear()
        self._httpd = JudgeHTTPServer((self.host, self._requested_port), self._state)
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
        self._state.stopping.set()
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
        description="Local OpenAI-compatible judge imitating vLLM + gpt-oss-120b, with fault injection.\n"
        "Serves GET /v1/models, GET /health and POST /v1/chat/completions until Ctrl-C.\n"
        "Fault rates are fractions of chat requests in [0, 1] and must sum to at most 1;\n"
        "the header X-Judge-Fault: OUTCOME overrides them for one request.",
        epilog=PROMPT_FORMAT,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8002, help="TCP port to listen on (0: any free port)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the served model name; other names get 404, as in vLLM")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="fraction of requests answered with an HTTP error"
    )
    parser.add_argument(
        "--error-status", type=int, default=500, help="HTTP status (400-599) of the --error-rate answers"
    )
    parser.add_argument(
        "--timeout-rate",
        type=float,
        default=0.0,
        help="fraction of requests that hang --hang-s seconds before answering (the client times out)",
    )
    parser.add_argument("--hang-s", type=float, default=30.0, help="seconds a --timeout-rate request hangs")
    parser.add_argument(
        "--slow-rate", type=float, default=0.0, help="fraction of requests answered normally, after --slow-s seconds"
    )
    parser.add_argument("--slow-s", type=float, default=2.0, help="delay in seconds of a --slow-rate answer")
    parser.add_argument(
        "--unparsable-rate",
        type=float,
        default=0.0,
        help="fraction of requests answered with content that has no <true_false> verdict",
    )
    parser.add_argument(
        "--null-content-rate",
        type=float,
        default=0.0,
        help='fraction of requests answered with content null and finish_reason "length"',
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the per-request random draw (same seed: same fault sequence)"
    )
    parser.add_argument(
        "--schedule",
        default=None,
        help=f"comma-separated outcomes served in a cycle, request i gets item i mod length; "
        f"overrides the rates. Outcomes: {','.join(OUTCOMES)}",
    )
    parser.add_argument(
        "--log-level", default="INFO", help="logging level of the server: DEBUG, INFO, WARNING or ERROR"
    )
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

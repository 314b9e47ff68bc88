"""Several training processes (accelerate, DeepSpeed, FSDP): one collective per scoring call.

TRL gathers the rewards across processes but not the dataset columns, so every process
sends its completions (compact tuples, see :mod:`.scoring`) and the judge requests it
made since the previous scoring call to the main process, which alone records them and
writes rows. :func:`gather` is called by every process at every scoring call (a process
that skipped it would leave the others waiting): it is the only collective otel-grpo adds.

Judge requests are recorded per process by the LLM HTTP instrumentation; a non-main
process keeps them (:class:`RequestBuffer`, a request listener) for the next gather.
"""

from __future__ import annotations

import threading
from typing import Any

from otel_grpo.instrumentation.llm_http.call import EndedRequest, request_listeners
from otel_grpo.instrumentation.llm_http.classify import ROLE_JUDGE

Payload = tuple[list[Any], list[EndedRequest]]
"""What one process sends: its completions and the judge requests it made."""


def gather(payload: Payload, num_processes: int) -> list[Payload]:
    """Every process's payload, in process order (``accelerate.utils.gather_object``); called on every process."""
    if num_processes <= 1:
        return [payload]
    from accelerate.utils import gather_object

    return list(gather_object([payload]))


class RequestBuffer:
    """The judge requests this (non-main) process made since the last :meth:`drain`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[EndedRequest] = []
        self._listening = False

    def listen(self) -> None:
        """Start keeping this process's judge requests (idempotent)."""
        if not self._listening:
            self._listening = True
            request_listeners.append(self._keep)

    def stop(self) -> None:
        """Stop keeping them."""
        if self._listening:
            self._listening = False
            try:
                request_listeners.remove(self._keep)
            except ValueError:
                pass

    def _keep(self, request: EndedRequest) -> None:
        if request.role == ROLE_JUDGE:
            with self._lock:
                self._requests.append(request)

    def drain(self) -> list[EndedRequest]:
        """The requests kept so far, forgotten here."""
        with self._lock:
            requests, self._requests = self._requests, []
        return requests

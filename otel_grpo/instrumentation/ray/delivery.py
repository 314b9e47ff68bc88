"""Reading the records of remote calls on the driver without waiting for a call that runs.

:func:`completed` asks Ray which calls have completed, without fetching anything (so a
large record on another node does not look late) and, at a step's end, without waiting
(``timeout=0``); :func:`fetch` reads the completed ones in one ``ray.get``;
:func:`resolve_nested` does the same for the records of the remote calls those calls
made, level by level.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.ray.events import RECORDS_ATTRIBUTE, CallPayload, from_wire, to_wire


def remaining(deadline: float | None) -> float:
    """Seconds left until ``deadline`` (``time.monotonic``); 0 without one."""
    return 0.0 if deadline is None else max(0.0, deadline - time.monotonic())


def completed(refs: list[Any], deadline: float | None = None) -> set[Any]:
    """The references in ``refs`` whose call has completed, waiting until ``deadline`` at most.

    Without a deadline nothing is waited for and nothing is fetched; with one (at exit),
    the records are fetched while waiting.
    """
    if not refs:
        return set()
    import ray

    timeout = remaining(deadline)
    try:
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout, fetch_local=timeout > 0)
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray records wait", exc)
        return set()
    return set(ready)


def fetch(refs: list[Any]) -> list[Any]:
    """The records behind ``refs`` (completed calls): one ``ray.get``; on an error, one by one.

    A call that raised sent its records on its exception; a dead worker sent none (None).
    """
    if not refs:
        return []
    import ray

    try:
        return [from_wire(payload) for payload in ray.get(refs)]
    except Exception:  # noqa: BLE001 - some call raised: read each, records ride on its exception
        pass
    out = []
    for ref in refs:
        try:
            out.append(from_wire(ray.get(ref)))
        except Exception as exc:  # noqa: BLE001
            out.append(records_of(exc))
    return out


def records_of(exc: BaseException) -> Any:
    """The records a failed call sent on its exception, if any (a dead worker sends none)."""
    for candidate in (exc, getattr(exc, "cause", None)):
        payload = getattr(candidate, RECORDS_ATTRIBUTE, None) if candidate is not None else None
        if payload is not None:
            return from_wire(payload)
    return None


def _nested_refs(payloads: Iterable[Any], known: dict[Any, Any]) -> list[Any]:
    """The references of nested calls below ``payloads`` not yet fetched (records inline are looked into)."""
    refs: list[Any] = []
    todo = list(payloads)
    while todo:
        payload = todo.pop()
        if not isinstance(payload, CallPayload):
            continue
        for item in payload.nested:
            if isinstance(item, CallPayload):
                todo.append(item)
            elif item not in known and item not in refs:
                refs.append(item)
    return refs


def inline_completed(nested: tuple[Any, ...]) -> tuple[Any, ...]:
    """``nested`` (a worker's references to the records of the calls it made) with the records of
    every call that has completed put in place of its reference (in their wire form).

    The worker owns those calls, so it knows at once which have completed; the driver, which
    only borrows the references, may learn it later than the parent's records arrive.
    """
    refs = [item for item in nested if not isinstance(item, list)]
    ready = completed(refs)
    if not ready:
        return nested
    import ray

    out = []
    for item in nested:
        if isinstance(item, list) or item not in ready:
            out.append(item)
            continue
        try:
            out.append(ray.get(item))
        except Exception as exc:  # noqa: BLE001 - a call that raised sent its records on its exception
            records = records_of(exc)
            out.append(to_wire(records) if isinstance(records, CallPayload) else item)
    return tuple(out)


def resolve_nested(payloads: Iterable[Any], deadline: float | None = None) -> dict[Any, Any]:
    """The records of every completed nested call below ``payloads``, by reference.

    A nested call that has not completed (by ``deadline``, if any) is absent: its parent's
    replay defers it.
    """
    resolved: dict[Any, Any] = {}
    todo = _nested_refs(payloads, resolved)
    while todo:
        ready = completed(todo, deadline)
        done = [ref for ref in todo if ref in ready]
        fetched = fetch(done)
        resolved.update(zip(done, fetched, strict=True))
        todo = _nested_refs(fetched, resolved)
    return resolved


__all__ = ["completed", "fetch", "inline_completed", "records_of", "remaining", "resolve_nested"]

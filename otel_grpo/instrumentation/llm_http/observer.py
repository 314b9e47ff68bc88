"""The one stream observer: the reply bytes a caller reads, seen on their way and never read by us.

A reply whose body the client has not read yet (``stream=True``, SSE) is observed,
not consumed: the response's byte stream is replaced by one that hands every chunk to
a :class:`BodyObserver` as the caller pulls it, and the call ends when that stream is
exhausted or closed (or raises). The observed streams, one per client library:

* :func:`observed_httpx_stream`: a subclass of the library's own ``SyncByteStream`` /
  ``AsyncByteStream`` (httpx and httpx2), so ``isinstance`` checks still pass;
* :class:`ObservedRaw`: a ``wrapt`` proxy of the urllib3 response behind a
  ``requests`` response (``response.raw``).

Every chunk reaches the caller unchanged and every exception is re-raised as the same
object. At most :data:`MAX_OBSERVED_BODY` bytes are kept for parsing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import wrapt

from otel_grpo.faults import guarded
from otel_grpo.instrumentation.llm_http.call import LLMCall
from otel_grpo.instrumentation.llm_http.errors import FAULT_KIND
from otel_grpo.instrumentation.llm_http.reply import DECODABLE_ENCODINGS, parse_reply

MAX_OBSERVED_BODY = 8 * 1024 * 1024
"""Bytes of a streamed reply kept for parsing; beyond that the reply is not read (``unknown_body``)."""


class BodyObserver:
    """Collects the bytes of one reply as the caller reads them and ends its :class:`LLMCall`."""

    __slots__ = ("call", "status", "content_type", "encoding", "_buffer", "_size", "_overflow")

    def __init__(self, call: LLMCall, status: int, content_type: str, encoding: str) -> None:
        self.call = call
        self.status = status
        self.content_type = content_type
        self.encoding = encoding  # the Content-Encoding of the observed bytes ("" when decoded)
        self._buffer: list[bytes] = []
        self._size = 0
        self._overflow = False

    @guarded(FAULT_KIND)
    def feed(self, chunk: bytes | bytearray | memoryview | None) -> None:
        """A chunk went to the caller."""
        if self._overflow or not chunk:
            return
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)
        self._size += len(data)
        if self._size > MAX_OBSERVED_BODY:
            self._overflow = True
            self._buffer = []
        else:
            self._buffer.append(data)

    @guarded(FAULT_KIND)
    def finish(self) -> None:
        """The stream was exhausted or closed: parse what flowed and stop the call (once)."""
        if self.call.ended:
            return
        body = None if self._overflow else b"".join(self._buffer)
        self._buffer = []
        reply = None if body is None else parse_reply(body, self.content_type, self.encoding)
        undecodable = reply is None and self.encoding.strip().lower() not in DECODABLE_ENCODINGS
        self.call.stop(self.status, reply, unknown_body=self._overflow or undecodable)

    def fail(self, exc: BaseException) -> None:
        """Reading the stream raised ``exc``."""
        self.call.fail(exc, self.status)


# --- httpx / httpx2 ---------------------------------------------------------------------------
class _ObservedStreamBase:
    """Delegates unknown attributes (e.g. ``elapsed``) to the wrapped stream."""

    def __init__(self, inner: Any, observer: BodyObserver) -> None:
        self._otel_inner = inner
        self._otel_observer = observer

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("_otel_inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


class _SyncObservedStream(_ObservedStreamBase):
    def __iter__(self) -> Iterator[bytes]:
        observer = self._otel_observer
        try:
            for chunk in self._otel_inner:
                observer.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            observer.fail(exc)
            raise
        observer.finish()

    def close(self) -> None:
        try:
            self._otel_inner.close()
        except BaseException as exc:
            self._otel_observer.fail(exc)
            raise
        self._otel_observer.finish()


class _AsyncObservedStream(_ObservedStreamBase):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        observer = self._otel_observer
        try:
            async for chunk in self._otel_inner:
                observer.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            observer.fail(exc)
            raise
        observer.finish()

    async def aclose(self) -> None:
        try:
            await self._otel_inner.aclose()
        except BaseException as exc:
            self._otel_observer.fail(exc)
            raise
        self._otel_observer.finish()


_stream_classes: dict[tuple[type, bool], type] = {}


def observed_httpx_stream(base: type, is_async: bool, inner: Any, observer: BodyObserver) -> Any:
    """``inner`` (an httpx/httpx2 byte stream) wrapped in a subclass of ``base`` that reports to ``observer``."""
    key = (base, is_async)
    cls = _stream_classes.get(key)
    if cls is None:
        mixin = _AsyncObservedStream if is_async else _SyncObservedStream
        cls = type(f"OtelGrpo{mixin.__name__.lstrip('_')}", (mixin, base), {})
        _stream_classes[key] = cls
    return cls(inner, observer)


# --- requests ---------------------------------------------------------------------------------
class ObservedRaw(wrapt.ObjectProxy):
    """A urllib3 response proxy reporting the bytes ``requests`` reads to a :class:`BodyObserver`."""

    def __init__(self, raw: Any, observer: BodyObserver) -> None:
        super().__init__(raw)
        self._self_observer = observer

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        """urllib3's ``stream``, chunk by chunk, observed."""
        observer = self._self_observer
        try:
            for chunk in self.__wrapped__.stream(*args, **kwargs):
                observer.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            observer.fail(exc)
            raise
        observer.finish()

    def read(self, *args: Any, **kwargs: Any) -> Any:
        """urllib3's ``read``, observed; a read of everything (or of nothing left) ends the call."""
        observer = self._self_observer
        try:
            data = self.__wrapped__.read(*args, **kwargs)
        except BaseException as exc:
            observer.fail(exc)
            raise
        observer.feed(data)
        amt = args[0] if args else kwargs.get("amt")
        if not data or amt is None:
            observer.finish()
        return data

    def close(self) -> Any:
        """urllib3's ``close``; ends the call with what was read."""
        try:
            return self.__wrapped__.close()
        finally:
            self._self_observer.finish()

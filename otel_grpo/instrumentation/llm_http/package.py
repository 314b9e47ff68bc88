"""The libraries the LLM HTTP instrumentation wraps (as in an opentelemetry-python-contrib ``package.py``)."""

_instruments: tuple[str, ...] = ()
"""Libraries that must be installed: none. Each of :data:`_instruments_any` that is installed is
wrapped when it is imported, so the instrumentor never refuses to load for a missing one."""

_instruments_any = ("httpx >= 0.27", "httpx2", "requests >= 2.0")
"""The HTTP clients whose ``send`` is wrapped: ``openai`` 1.x/2.x is built on httpx, 3.x on httpx2."""

_supports_metrics = True

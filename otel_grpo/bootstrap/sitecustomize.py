"""Loaded by ``otel-grpo run``: instrument the trainer before the user's script runs."""

try:
    from otel_grpo.bootstrap_hooks import start_from_environment

    start_from_environment()
except Exception as _exc:  # noqa: BLE001 - never stop the user's program from starting
    import logging

    logging.getLogger("otel_grpo").warning("otel-grpo: instrumentation disabled: %s", _exc)

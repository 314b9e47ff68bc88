"""Loaded by ``otel-grpo run`` before the user's script: instrument, then leave no trace.

``otel-grpo run`` puts only this folder on the child's ``PYTHONPATH``. Here we:

1. take this folder off ``sys.path`` and give ``PYTHONPATH`` back its original value,
   so the program (and any process it starts) sees exactly the path it would see
   without otel-grpo;
2. run the ``sitecustomize`` the user already had, if there is one on the path;
3. start otel-grpo from ``$OTEL_GRPO_CONFIG``.

Nothing here may stop the user's program from starting.
"""


def _restore_path() -> None:
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    original = os.environ.pop("OTEL_GRPO_ORIGINAL_PYTHONPATH", None)
    if original is None:
        return
    if not original:  # there was no PYTHONPATH (an empty one adds nothing either)
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = original


def _run_user_sitecustomize() -> None:
    import importlib
    import sys

    ours = sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise
    finally:
        if ours is not None and "sitecustomize" not in sys.modules:
            sys.modules["sitecustomize"] = ours


try:
    _restore_path()
    _run_user_sitecustomize()
except Exception as _exc:  # noqa: BLE001 - the user's sitecustomize failing is reported like Python does
    import sys as _sys

    print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(_exc).__name__}: {_exc}", file=_sys.stderr)


def _console_logging() -> None:
    """otel-grpo's own lines (what was instrumented, warnings) on stderr, unless the program logs."""
    import logging

    class _UnlessProgramLogs(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not logging.getLogger().handlers  # the program set up logging: it shows our lines

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_UnlessProgramLogs())
    logger = logging.getLogger("otel_grpo")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


try:
    _console_logging()
    from otel_grpo.instrumentation.bootstrap import start_from_environment

    start_from_environment()
except Exception as _exc:  # noqa: BLE001 - never stop the user's program from starting
    import logging

    try:
        from otel_grpo.redact import redact_text as _redact

        _text = _redact(str(_exc))
    except Exception:  # noqa: BLE001
        _text = "(message not shown)"
    logging.getLogger("otel_grpo").warning("otel-grpo: instrumentation disabled: %s: %s", type(_exc).__name__, _text)

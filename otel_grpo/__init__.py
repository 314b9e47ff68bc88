"""otel-grpo: OpenTelemetry instrumentation for GRPO training, with a WandB exporter.

Quick use::

    import otel_grpo
    tel = otel_grpo.setup()                  # config/telemetry.yaml or packaged defaults
    otel_grpo.instrument_trainer(trainer)    # the standard trainer shape, no edits
    ...
    tel.shutdown()

Manual API for other loop shapes: :func:`step`, :func:`validation`, :func:`sample`,
:func:`record_sample`, :func:`record_executor_run`, :func:`record_workflow` (both in one
call), :func:`record_judge_evaluation`, :func:`record_judge_request`, :func:`record_scalars`,
and the blocks :func:`judge_evaluation` and :func:`executor_run` around an inline judge or
executor call. Every call is a no-op when otel-grpo is not set up, and none of them ever
raises into the trainer. :func:`setup` also instruments the HTTP clients, so the judge
requests of a hand-instrumented loop are recorded (``instrumentation.http: false`` turns that off).
"""

from __future__ import annotations

from typing import Any

from otel_grpo.api import NullScope, Telemetry, get_telemetry
from otel_grpo.faults import guarded, report_fault
from otel_grpo.instrumentation import ray as _ray  # noqa: F401 - registers Ray call tracking with install()
from otel_grpo.instrumentation import trl as _trl  # noqa: F401 - registers TRL's GRPOTrainer with install()
from otel_grpo.instrumentation.install import setup
from otel_grpo.instrumentation.manual import executor_run, judge_evaluation

__version__ = "0.1.0"

__all__ = [
    "Telemetry",
    "get_telemetry",
    "setup",
    "step",
    "validation",
    "sample",
    "record_sample",
    "record_executor_run",
    "record_workflow",
    "record_judge_evaluation",
    "record_judge_request",
    "record_scalars",
    "judge_evaluation",
    "executor_run",
    "instrument_trainer",
    "uninstrument_trainer",
    "__version__",
]

_NULL = NullScope()


@guarded("step", default=_NULL)
def step(step_number: int) -> Any:
    """A training-step window (``with``/``async with``); no-op when not set up."""
    tel = get_telemetry()
    return tel.step(step_number) if tel is not None else _NULL


@guarded("validation", default=_NULL)
def validation(step_number: int | None = None) -> Any:
    """A validation window logged at ``step_number`` (default: the latest step)."""
    tel = get_telemetry()
    return tel.validation(step_number) if tel is not None else _NULL


def sample(source: Any = None, problem_type: Any = None, group: Any = None) -> Any:
    """Serve one sample: what is recorded inside belongs to its ``source``."""
    tel = get_telemetry()
    return tel.sample(source, problem_type, group) if tel is not None else _NULL  # Telemetry.sample is guarded


# The two calls made for every sample guard themselves inline (a decorator's extra call
# layer is measurable per sample); the rest use the shared ``@guarded`` decorator.
def record_sample(reward: Any, correctness: Any = None, **labels: Any) -> None:
    """Record one scored sample: its reward and correctness (default: the reward)."""
    tel = get_telemetry()
    if tel is not None:
        try:
            tel.recorder.record_sample(reward, correctness, **labels)
        except Exception as exc:  # noqa: BLE001 - never raise into the trainer
            report_fault("record_sample", exc)


def record_executor_run(cost: Any = 0.0, duration_s: Any = None, success: Any = True, **labels: Any) -> None:
    """Record one workflow execution: cost in USD, wall time in seconds, success."""
    tel = get_telemetry()
    if tel is not None:
        try:
            tel.recorder.record_executor_run(cost, duration_s, success, **labels)
        except Exception as exc:  # noqa: BLE001 - never raise into the trainer
            report_fault("record_executor_run", exc)


def record_workflow(source: Any, reward: Any, correctness: Any = None, **details: Any) -> None:
    """Record one executed workflow in one call: labels, reward, correctness and executor run together.

    ``details``: ``problem_type``, ``cost`` (USD), ``success`` (False: an incorrect sample with
    reward 0), ``duration_s``, ``group`` (the GRPO group key), ``scored_by`` (``rule``, ``judge``
    or ``judge_failed``), ``executed``. An executor run is counted when ``executed`` is true,
    or, by default, when ``cost`` or ``duration_s`` is given or ``success`` is false. The same
    figures as ``with sample(): record_executor_run(...); record_sample(...)``, at a fraction
    of the cost.
    """
    tel = get_telemetry()
    if tel is not None:
        try:
            tel.recorder.record_workflow(source, reward, correctness, **details)
        except Exception as exc:  # noqa: BLE001 - never raise into the trainer
            report_fault("record_workflow", exc)


@guarded("record_judge_evaluation")
def record_judge_evaluation(outcome: str, verdict: Any = None, duration_s: Any = None, **kwargs: Any) -> None:
    """Record one judge evaluation: ``success``, ``parse_failure`` or ``api_failure``."""
    tel = get_telemetry()
    if tel is not None:
        tel.record_judge_evaluation(outcome, verdict, duration_s, **kwargs)


@guarded("record_judge_request")
def record_judge_request(**kwargs: Any) -> None:
    """Record one HTTP request to the judge (error_type, input_tokens, output_tokens)."""
    tel = get_telemetry()
    if tel is not None:
        tel.record_judge_request(**kwargs)


@guarded("record_scalars")
def record_scalars(values: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Record trainer scalars for the current step: ``record_scalars(loss=0.4, kl_div=0.01)``."""
    tel = get_telemetry()
    if tel is not None:
        tel.record_scalars(values, **kwargs)


def instrument_trainer(trainer: Any, **options: Any) -> Any:
    """Wrap the step, validation, executor, reward and judge methods of ``trainer``."""
    from otel_grpo.instrumentation.install import instrument_trainer as _instrument

    return _instrument(trainer, **options)


def uninstrument_trainer(trainer: Any) -> Any:
    """Undo :func:`instrument_trainer`."""
    from otel_grpo.instrumentation.install import uninstrument_trainer as _uninstrument

    return _uninstrument(trainer)

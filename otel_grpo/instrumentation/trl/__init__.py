"""otel-grpo for TRL's ``GRPOTrainer`` (and subclasses): the same rows, exact across processes.

A sample is one completion the trainer's reward functions score; see docs/trl.md for how
each term maps onto TRL. Modules: :mod:`.scoring` (pure: values -> completions),
:mod:`.calls` (the reward functions' wrappers), :mod:`.processes` (the one collective),
:mod:`.session` (one trainer: scoring, merge, windows), :mod:`.callback` (the windows),
:mod:`.hooks` (class wrappers, import hook; registered with :func:`otel_grpo.instrumentation.install.install`).
Launchers and ranks (a non-main rank writes nothing) are :mod:`otel_grpo.instrumentation.launch`.

The interface to the core (the only otel-grpo calls made here):

* ``Telemetry.step(n)`` / ``Telemetry.validation(n)`` scopes, opened and closed with
  ``.open()`` / ``.close(ok)`` from the trainer callback (one window per optimizer step);
* ``Recorder.record_workflow(source, reward, correctness, problem_type=, group=,
  scored_by=, executed=False)`` per scorable completion, on the main process;
* ``Recorder.record_judge_evaluation(outcome, verdict, duration_s, error_type=, source=,
  problem_type=)`` per judge evaluation (one per completion a judge function scored);
* ``Recorder.resolve_labels(source, problem_type)`` for the labels of a reward call;
* ``Telemetry.exporter.health["unscorable"]``, the ``exporter/unscorable`` count;
* ``judge_health(tel).observe(outcome, error_type)`` per judge evaluation (the outage warning);
* the judge-request accounting of the LLM HTTP instrumentation: ``enter_call`` /
  ``exit_call`` with ``CALL_JUDGE`` or ``CALL_REWARD`` around each reward function and a
  ``JudgeEvaluationState`` collecting its attempts; ``llm_http.call.request_listeners``
  (``EndedRequest``) on non-main processes and ``llm_http.call.replay_request`` on the main one;
* ``instrument_http``, ``patch_method`` / ``unpatch_method``, ``report_instrumented``,
  ``report_fault``, ``setup`` / ``get_telemetry``, and the ``instrumentation.trl`` config.
"""

from __future__ import annotations

from otel_grpo.instrumentation.install import register_extension, register_trainer_handler
from otel_grpo.instrumentation.trl.hooks import attach_trainer, is_trl_trainer, uninstrument_trl, watch_trl

register_extension(watch_trl, targets_only=True)  # otel-grpo run: every GRPOTrainer made
register_trainer_handler(attach_trainer)  # instrument_trainer(trainer) on a GRPOTrainer

__all__ = ["attach_trainer", "is_trl_trainer", "uninstrument_trl", "watch_trl"]

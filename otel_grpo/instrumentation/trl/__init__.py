"""otel-grpo for TRL's ``GRPOTrainer`` (and subclasses): the same rows, exact across processes.

A sample is one completion the trainer's reward functions score; see docs/trl.md for how
each term maps onto TRL. Modules: :mod:`.scoring` (pure: values -> completions),
:mod:`.calls` (the reward functions' wrappers), :mod:`.processes` (the one collective),
:mod:`.session` (one trainer: scoring, merge, windows), :mod:`.callback` (the windows),
:mod:`.hooks` (class wrappers, import hook), :mod:`.launch` (launchers and ranks).

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

from otel_grpo.instrumentation.trl.hooks import instrument_trl_trainer, is_trl_trainer, uninstrument_trl, watch_trl
from otel_grpo.instrumentation.trl.launch import hand_over_to_workers, worker_overrides

__all__ = [
    "hand_over_to_workers",
    "instrument_trl_trainer",
    "is_trl_trainer",
    "uninstrument_trl",
    "watch_trl",
    "worker_overrides",
]

"""The trainer callback that opens and closes otel-grpo's windows around TRL's optimizer steps.

transformers calls ``on_step_begin`` before the first micro-batch of an optimizer step
(``state.global_step`` is then ``s - 1`` for the step TRL logs as ``s``) and
``on_step_end`` after the optimizer step (``global_step`` is ``s``), so one training
window per optimizer step, numbered ``s``, whatever ``logging_steps`` is. A step that
scored nothing (TRL reuses a generation batch) still gets its row. ``on_evaluate``
closes the validation window the scoring of TRL's evaluation opened. The callback never
changes ``control``: it returns None.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from otel_grpo.faults import fault_guard
from otel_grpo.instrumentation.trl.session import TrlSession


class OtelGrpoCallback(TrainerCallback):
    """Windows for one :class:`TrlSession` (added to the trainer's callbacks by otel-grpo)."""

    def __init__(self, session: TrlSession) -> None:
        self.session = session

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open the window of step ``state.global_step + 1``."""
        with fault_guard("TRL step window"):  # never raises into the trainer
            self.session.open_step(int(state.global_step) + 1)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the step's window: its row is written."""
        with fault_guard("TRL step window"):  # never raises into the trainer
            self.session.close_step(ok=True)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the validation window of this evaluation."""
        with fault_guard("TRL validation window"):  # never raises into the trainer
            self.session.close_validation()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close whatever is still open."""
        with fault_guard("TRL step window"):  # never raises into the trainer
            self.session.close()

"""Dashboards as code: the WandB workspace (:mod:`otel_grpo.tools.dashboards.wandb_workspace`).

The same panel groups are rendered offline by :mod:`otel_grpo.tools.report` and, for
Prometheus, by :mod:`otel_grpo.tools.dashboards.grafana`.
"""

from otel_grpo.tools.dashboards.wandb_workspace import (
    DEFAULT_DATASETS,
    X_AXIS,
    build_workspace,
    build_workspace_spec,
    spec_keys,
)

__all__ = ["DEFAULT_DATASETS", "X_AXIS", "build_workspace", "build_workspace_spec", "spec_keys"]

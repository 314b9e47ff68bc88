"""Dashboards as code: the WandB workspace (:mod:`otel_grpo.dashboards.wandb_workspace`).

The same panel groups are rendered offline by :mod:`otel_grpo.report` and, for
Prometheus, by :mod:`otel_grpo.grafana_dashboard`.
"""

from otel_grpo.dashboards.wandb_workspace import (
    DEFAULT_DATASETS,
    X_AXIS,
    build_workspace,
    build_workspace_spec,
    spec_keys,
)

__all__ = ["DEFAULT_DATASETS", "X_AXIS", "build_workspace", "build_workspace_spec", "spec_keys"]

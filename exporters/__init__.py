"""Metric exporters of otel-grpo: the per-step rollup and the WandB writer."""

"""The export stage of otel-grpo: the pure rollup of a closed window, the WandB writer and tables, OTLP, Prometheus."""

"""The export stage of otel-grpo: the step reader, the pure rollup, the WandB writer and tables, OTLP, Prometheus."""

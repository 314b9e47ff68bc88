"""Side-by-side benchmarks of otel-grpo's hot path, step end, memory, WandB bytes and overhead.

Run ``python -m benchmarks`` (full, several minutes) or ``python -m benchmarks --smoke``
(tiny sizes, under a minute; what CI runs). Each section runs in a fresh subprocess so
one section's state (otel-grpo set up, a WandB run, allocated memory) cannot skew the
next; inside a section every variant runs in the same process, interleaved, and the
median of the repetitions is reported. Results go to a Markdown table
(``benchmarks/RESULTS.md``) and a JSON file next to it (``results.json``).

Sections (one module each):

1. :mod:`benchmarks.recording`: per-sample recording cost (bare loop, Option A, Option B,
   naive OpenTelemetry, otel-grpo manual API, otel-grpo auto-instrumented trainer);
2. :mod:`benchmarks.step_export`: step-end export latency for 100 to 100,000 samples per step;
3. :mod:`benchmarks.memory`: RSS growth over 1,000,000 samples across 1,000 steps;
4. :mod:`benchmarks.wandb_bytes`: bytes per step added to the offline run's ``.wandb`` file;
5. :mod:`benchmarks.end_to_end`: the shape trainer with and without instrumentation;
6. :mod:`benchmarks.judge_path`: throughput of 500 concurrent judge evaluations;

and, in a full run when Ray is installed (or with ``--only ray``), :mod:`benchmarks.ray_overhead`:
driver time added per remote call and per step with N = 1, 2, 4 Ray workers.
"""

SECTIONS = ("recording", "step_export", "memory", "wandb_bytes", "end_to_end", "judge_path")

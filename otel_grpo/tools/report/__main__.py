"""``python -m otel_grpo.tools.report``: the same as ``otel-grpo report``."""

import sys

from otel_grpo.tools.report.cli import main

sys.exit(main())

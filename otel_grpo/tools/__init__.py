"""Tools on top of the pipeline: the demo, the command line, reports, run inspection, dashboards.

Nothing in the pipeline imports from here."""

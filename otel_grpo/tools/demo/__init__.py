"""Demo kit: sample data, rule-based scoring and a local OpenAI-compatible judge server."""

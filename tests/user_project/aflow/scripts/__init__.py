"""AFlow's scripts package (trimmed): LLM client and operators used by generated workflows."""

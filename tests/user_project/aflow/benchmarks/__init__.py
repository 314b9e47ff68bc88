"""AFlow's benchmarks package (trimmed): answer extraction shared by generated workflows."""

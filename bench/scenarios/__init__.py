"""One module per bench scenario; each `run(...)` measures and returns numbers, nothing else."""

"""Timing scripts, not tests: run them as modules from the repository root
(`uv run python -m benchmarks.update_fleet`, `uv run python -m benchmarks.image_size`)."""

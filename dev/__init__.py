"""The template repository's own tools; run them as modules from the repository root
(`uv run python -m dev.render_diff ...`), import them as `dev.x` (pytest has the root on its path)."""

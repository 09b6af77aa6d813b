"""A tool-using agent: the model plans, typed tools act, limits keep every run bounded.

- `tools`: the typed tool registry (JSON-schema arguments, per-tool timeouts, refusals).
- `builtin`: the example tools: `calculator`, `clock` and `lookup` (the bundled glossary).
- `planner`: the offline model's behaviour, a deterministic keyword planner.
- `loop`: the agent loop: step limit, token and cost budgets, a transcript of every run.
- `api`: the HTTP endpoints (`POST /agent/runs`, `GET /agent/runs/{id}`, `GET /agent/tools`).
- `evaluate`: the quality gate on the scenarios in `evals/scenarios.json`.
"""

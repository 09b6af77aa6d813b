"""A tool-using agent on pydantic-ai: the model plans, typed tools act, limits bound every run.

- `builtin`: the example tools (typed functions): `calculator`, `clock` and `lookup`.
- `tools`: the toolset around them: a span, metrics and an outcome for every call.
- `planner`: the offline model (a pydantic-ai FunctionModel), a deterministic keyword planner.
- `model`: the model the settings name (OpenAI-compatible or offline), metered and priced.
- `loop`: the run: step, token, cost and time limits, and a transcript of every run.
- `api`: the HTTP endpoints (`POST /agent/runs`, `GET /agent/runs/{id}`, `GET /agent/tools`).
- `evaluate`: the quality gate on the scenarios in `evals/scenarios.json` (pydantic-evals).
"""

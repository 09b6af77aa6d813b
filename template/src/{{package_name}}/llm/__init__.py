"""The model provider: one interface, an OpenAI-compatible HTTP client and an offline model.

- `provider`: what the service depends on (`ChatModel`, `Embedder`, messages, usage).
- `openai`: the OpenAI-compatible HTTP implementation (OpenAI, Azure, vLLM, Ollama, LiteLLM).
- `offline`: deterministic implementations, no network and no weights: tests and local runs.
- `telemetry`: a span and Prometheus metrics around every model call and every step.
- `factory`: builds the configured, instrumented model from the settings.
"""

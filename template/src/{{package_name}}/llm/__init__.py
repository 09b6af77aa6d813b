"""The model provider: one interface, the OpenAI-compatible SDK and an offline model.

- `provider`: what the service depends on (`ChatModel`, `Embedder`, messages, usage).
- `openai`: the implementation on the `openai` SDK (OpenAI, Azure, vLLM, Ollama, LiteLLM).
- `offline`: deterministic implementations, no network and no weights: tests and local runs.
- `telemetry`: Prometheus metrics around every model call, GenAI spans from OpenTelemetry's
  instrumentation of the SDK, a span and metrics around every step.
- `factory`: builds the configured, instrumented model from the settings.
"""

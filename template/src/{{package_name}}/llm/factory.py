"""Build the configured model from the settings: offline by default, or OpenAI-compatible."""

import openai

from ..settings import Settings
from .offline import HashingEmbedder, OfflineChatModel, Respond
from .openai import OpenAIChatModel, OpenAIEmbedder, make_client
from .provider import ChatModel, Embedder, ModelError
from .telemetry import InstrumentedChatModel, InstrumentedEmbedder, LLMMetrics, Prices

# Where the deterministic offline model must never answer real users.
DEPLOYED_ENVIRONMENTS = frozenset({"staging", "production"})


class ProviderConfigError(RuntimeError):
    """The settings ask for a model provider that cannot serve this environment."""


def api_key(settings: Settings) -> str | None:
    """LLM_API_KEY, else the content of LLM_API_KEY_FILE (a secret file Vault Agent renders)."""
    if settings.llm_api_key is not None:
        return settings.llm_api_key.get_secret_value()
    if settings.llm_api_key_file is not None:
        try:
            return settings.llm_api_key_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ModelError(
                f"LLM_API_KEY_FILE={settings.llm_api_key_file} cannot be read ({error.strerror}): "
                "mount the secret there or set LLM_API_KEY",
                kind="config",
            ) from error
    return None


def prices(settings: Settings) -> Prices:
    return Prices(settings.llm_input_cost_per_1k_tokens, settings.llm_output_cost_per_1k_tokens)


def client(settings: Settings) -> openai.OpenAI:
    """The SDK client of LLM_BASE_URL, with the key, LLM_TIMEOUT_SECONDS and LLM_MAX_RETRIES."""
    return make_client(
        settings.llm_base_url,
        api_key(settings),
        settings.llm_timeout_seconds,
        settings.llm_max_retries,
    )


def online(settings: Settings) -> bool:
    """True for LLM_PROVIDER=openai; refuses the offline model in staging and production."""
    if settings.llm_provider == "openai":
        return True
    if settings.environment in DEPLOYED_ENVIRONMENTS:
        raise ProviderConfigError(
            f"LLM_PROVIDER is {settings.llm_provider!r} in ENVIRONMENT={settings.environment!r}: "
            "the offline model is for tests and local runs only. Set LLM_PROVIDER=openai, "
            "LLM_BASE_URL, LLM_MODEL (and LLM_EMBEDDING_MODEL) in the overlay's config.env and "
            "LLM_API_KEY in the Secret (deploy/README.md)"
        )
    return False


def build_chat_model(
    settings: Settings, metrics: LLMMetrics, offline: Respond, offline_name: str
) -> InstrumentedChatModel:
    """The chat model LLM_PROVIDER names; `offline` gives the offline model's behaviour."""
    inner: ChatModel
    if online(settings):
        inner = OpenAIChatModel(client(settings), settings.llm_model)
    else:
        inner = OfflineChatModel(offline, model=offline_name)
    return InstrumentedChatModel(inner, metrics, prices(settings))


def build_embedder(
    settings: Settings, metrics: LLMMetrics, dimensions: int
) -> InstrumentedEmbedder:
    inner: Embedder
    if online(settings):
        inner = OpenAIEmbedder(client(settings), settings.llm_embedding_model, dimensions)
    else:
        inner = HashingEmbedder(dimensions)
    return InstrumentedEmbedder(inner, metrics, prices(settings))

"""Build the configured model from the settings: offline by default, or OpenAI-compatible."""

from ..settings import Settings
from .offline import HashingEmbedder, OfflineChatModel, Respond
from .openai import OpenAIChatModel, OpenAIClient, OpenAIEmbedder
from .provider import ChatModel, Embedder, ModelError
from .telemetry import InstrumentedChatModel, InstrumentedEmbedder, LLMMetrics, Prices


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
                "mount the secret there or set LLM_API_KEY"
            ) from error
    return None


def prices(settings: Settings) -> Prices:
    return Prices(settings.llm_input_cost_per_1k_tokens, settings.llm_output_cost_per_1k_tokens)


def client(settings: Settings) -> OpenAIClient:
    return OpenAIClient(
        base_url=settings.llm_base_url,
        api_key=api_key(settings),
        timeout_seconds=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )


def build_chat_model(
    settings: Settings, metrics: LLMMetrics, offline: Respond, offline_name: str
) -> InstrumentedChatModel:
    """The chat model LLM_PROVIDER names; `offline` gives the offline model's behaviour."""
    inner: ChatModel
    if settings.llm_provider == "openai":
        inner = OpenAIChatModel(client(settings), settings.llm_model)
    else:
        inner = OfflineChatModel(offline, model=offline_name)
    return InstrumentedChatModel(inner, metrics, prices(settings))


def build_embedder(
    settings: Settings, metrics: LLMMetrics, dimensions: int
) -> InstrumentedEmbedder:
    inner: Embedder
    if settings.llm_provider == "openai":
        inner = OpenAIEmbedder(client(settings), settings.llm_embedding_model, dimensions)
    else:
        inner = HashingEmbedder(dimensions)
    return InstrumentedEmbedder(inner, metrics, prices(settings))

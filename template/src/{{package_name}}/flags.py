"""Feature flags through OpenFeature, read at every use: flip them without a restart.

FLAGS_PROVIDER chooses where they come from (both through the flagd provider):
- "file" (default): FLAGS_FILE in flagd's JSON format (`flags.json`; a ConfigMap in
  Kubernetes), evaluated in process and re-read within FLAGS_POLL_MS of a change;
- "flagd": a flagd server (FLAGD_HOST:FLAGD_PORT), which can itself read Git, a ConfigMap,
  S3 or HTTP sources;
- "none": no provider, every flag has its default.

A flag the provider cannot evaluate (server down, file unreadable) gets its default, and the
error is logged: the service keeps working as if no flag were set.

The flags:
- `llm-calls-off` (boolean, default false): the kill switch of the model provider. When on,
  the service makes no model call: RAG answers from retrieval alone, the agent refuses new
  runs (503). docs/runbook.md says when and how to flip it.
"""

import logging
from dataclasses import dataclass

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.exception import ProviderNotReadyError
from openfeature.provider import FeatureProvider
from openfeature.provider.no_op_provider import NoOpProvider

from .settings import Settings

log = logging.getLogger(__name__)

LLM_CALLS_OFF = "llm-calls-off"


@dataclass(frozen=True)
class Flags:
    """The service's flags, each evaluated when asked (never cached here)."""

    client: OpenFeatureClient

    def llm_calls_off(self) -> bool:
        details = self.client.get_boolean_details(LLM_CALLS_OFF, False)
        if details.error_code is not None:
            log.warning(
                "feature flag not evaluated, using its default",
                extra={"flag": LLM_CALLS_OFF, "error": details.error_message},
            )
        return details.value


def provider(settings: Settings) -> FeatureProvider:
    """The OpenFeature provider FLAGS_PROVIDER names."""
    if settings.flags_provider == "file":
        if not settings.flags_file.is_file():
            raise RuntimeError(
                f"FLAGS_FILE={settings.flags_file} does not exist: create it (flagd's format, see "
                "flags.json and docs/runbook.md) or set FLAGS_PROVIDER=none"
            )
        return FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(settings.flags_file),
            deadline_ms=settings.flags_poll_ms,
        )
    if settings.flags_provider == "flagd":
        return FlagdProvider(
            resolver_type=ResolverType.RPC,
            host=settings.flagd_host,
            port=settings.flagd_port,
            deadline_ms=settings.flags_poll_ms,
        )
    return NoOpProvider()


def install_flags(settings: Settings) -> Flags:
    """Set the provider for this service's OpenFeature domain, once it has read its flags."""
    try:
        api.set_provider_and_wait(provider(settings), domain=settings.service_name)
    except ProviderNotReadyError as error:
        # flagd down or the file invalid at start: serve with the defaults meanwhile; the
        # provider keeps trying (flagd reconnects, the file is polled)
        log.warning(
            "feature flags not ready, using their defaults until they are",
            extra={"provider": settings.flags_provider, "error": str(error)},
        )
    return Flags(api.get_client(domain=settings.service_name))

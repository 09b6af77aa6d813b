"""The served model: one version from the MLflow registry, loaded once at start.

MODEL_VERSION pins the version (the release names it: deploy/); without it MODEL_ALIAS
(default `production`) is resolved once, at start, to a version. Either way the process
serves exactly one version, and says which: the `X-Model-Version` header and the
`model_version` label of its metrics. A model that cannot be loaded stops the start with
the URI and the error: the service never answers with a default model.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..drift import ARTIFACT, ColumnProfile, parse_profile
from ..settings import Settings

log = logging.getLogger(__name__)

# MLflow signature types and the JSON values that stand for them.
NUMBER_TYPES = frozenset({"double", "float"})
INTEGER_TYPES = frozenset({"long", "integer"})
SUPPORTED_TYPES = NUMBER_TYPES | INTEGER_TYPES | {"boolean", "string"}


class ModelLoadError(RuntimeError):
    """The configured model cannot be served (unreachable registry, unknown version, ...)."""


@dataclass(frozen=True)
class Column:
    """One input of the model, from its signature."""

    name: str
    type: str  # double, float, long, integer, boolean or string
    required: bool = True


@dataclass
class ServedModel:
    name: str
    version: str
    uri: str  # what was asked for: models:/<name>@<alias> or models:/<name>/<version>
    run_id: str | None
    columns: list[Column]
    predictor: Any  # an mlflow.pyfunc.PyFuncModel
    profile: dict[str, ColumnProfile] | None = None
    loaded_at: float = field(default_factory=time.time)

    def predict(self, frame: Any) -> Any:
        return self.predictor.predict(frame)


def redact(uri: str) -> str:
    """The tracking URI without credentials, for messages and logs."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def scrub(text: str, uri: str) -> str:
    """The text without the URI's credentials (MLflow's errors quote the URLs it called)."""
    parts = urlsplit(uri)
    if parts.username is None:
        return text
    userinfo = parts.netloc.rsplit("@", 1)[0]
    return text.replace(userinfo + "@", "***@")


def model_uri(settings: Settings) -> str:
    if settings.model_version:
        return f"models:/{settings.model_name}/{settings.model_version}"
    return f"models:/{settings.model_name}@{settings.model_alias}"


def columns_of(signature_inputs: Any, uri: str) -> list[Column]:
    """The named inputs of a signature; ModelLoadError for a model the API cannot type."""
    if signature_inputs is None:
        raise ModelLoadError(
            f"{uri} has no signature: log the model with one (mlflow.models.infer_signature on "
            "a DataFrame of named features) so the service can validate requests"
        )
    if not signature_inputs.has_input_names() or signature_inputs.is_tensor_spec():
        raise ModelLoadError(
            f"{uri} has a tensor signature without column names: log the model with a "
            "column-based signature (infer_signature on a pandas DataFrame)"
        )
    columns = []
    for spec in signature_inputs.inputs:
        kind = str(getattr(spec.type, "name", spec.type))
        if kind not in SUPPORTED_TYPES:
            raise ModelLoadError(
                f"{uri}: input {spec.name!r} has the type {kind}; the service serves "
                f"{', '.join(sorted(SUPPORTED_TYPES))} columns"
            )
        columns.append(Column(spec.name, kind, bool(getattr(spec, "required", True))))
    return columns


def load(settings: Settings) -> ServedModel:
    """Resolve, download and load the configured model; ModelLoadError says what failed."""
    uri = model_uri(settings)
    where = redact(settings.mlflow_tracking_uri)
    try:
        import mlflow
        import mlflow.pyfunc
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mlflow.set_registry_uri(settings.mlflow_tracking_uri)
        client = MlflowClient()
        if settings.model_version:
            version = client.get_model_version(settings.model_name, settings.model_version)
        else:
            version = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
        # The resolved version, not the alias: an alias moved meanwhile cannot mix versions.
        predictor = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version.version}")
        columns = columns_of(predictor.metadata.get_input_schema(), uri)
        profile = _profile(version.run_id, uri)
    except ModelLoadError as error:
        raise ModelLoadError(f"cannot serve the model {uri} (registry {where}): {error}") from None
    except Exception as error:
        cause = scrub(f"{type(error).__name__}: {error}", settings.mlflow_tracking_uri)
        raise ModelLoadError(
            f"cannot load the model {uri} from the MLflow registry at {where}: {cause}"
        ) from None
    model = ServedModel(
        settings.model_name, str(version.version), uri, version.run_id, columns, predictor, profile
    )
    log.info(
        "model loaded",
        extra={"model_uri": uri, "model_version": model.version, "inputs": len(columns)},
    )
    return model


def _profile(run_id: str | None, uri: str) -> dict[str, ColumnProfile] | None:
    """The training reference logged with the model; None (no drift signal) without one."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if run_id is None:
        return None
    try:
        document = mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT}")
    except (MlflowException, OSError) as error:
        log.warning(
            "no reference profile: drift is not measured",
            extra={"model_uri": uri, "error": f"{type(error).__name__}: {error}"},
        )
        return None
    try:
        return parse_profile(document)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f"its {ARTIFACT} is malformed: {error}") from error

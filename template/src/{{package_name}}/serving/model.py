"""The served model: one version from the MLflow registry, loaded once at start.

MODEL_VERSION pins the version (the release names it: deploy/); without it MODEL_ALIAS
(default `production`) is resolved once, at start, to a version. Either way the process
serves exactly one version, and says which: the `X-Model-Version` header and the
`model_version` label of its metrics. A model that cannot be loaded stops the start with
the URI and the error: the service never answers with a default model.

Rows reach the model as a DataFrame of the signature's columns, in its order, with the
dtypes MLflow's schema enforcement would give them. A scikit-learn model whose columns are
all required and of one type is then called directly (the estimator's method that pyfunc
would call): the service has already checked each row against the same signature, and
MLflow's enforcement would only check it again, at about 1 ms a call, more than the
estimator itself takes. Any other model goes through `pyfunc.predict`, its enforcement
included.
"""

import logging
import time
from collections.abc import Callable, Sequence
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
FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max
# The dtype of each in the model's input frame: what MLflow's schema enforcement expects (it
# refuses to narrow: float64 values for a `float` column, int64 for an `integer` one).
DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "object",
}


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
    # The estimator's own prediction method when it can be called directly (module docstring).
    direct: Callable[[Any], Any] | None = None

    def frame(self, rows: Sequence[dict[str, Any]]) -> Any:
        """Checked rows as the model's input: the signature's columns, in order, typed."""
        import numpy as np
        import pandas as pd

        names = [column.name for column in self.columns]
        if self.direct is not None:  # one type, every column required: one typed block
            cells = [[row[name] for name in names] for row in rows]
            return pd.DataFrame(np.array(cells, dtype=DTYPES[self.columns[0].type]), columns=names)
        typed = {}
        for column in self.columns:
            values = [row.get(column.name) for row in rows]
            # A missing optional value: NaN in a float column, else the column stays objects.
            floats = column.type in NUMBER_TYPES
            dtype = DTYPES[column.type] if floats or None not in values else "object"
            typed[column.name] = np.array(values, dtype=dtype)
        return pd.DataFrame(typed, columns=names)

    def predict(self, frame: Any) -> Any:
        if self.direct is not None:
            return self.direct(frame)
        return self.predictor.predict(frame)


def direct_method(predictor: Any, columns: list[Column]) -> Callable[[Any], Any] | None:
    """The scikit-learn estimator's method that pyfunc calls (`predict`, or the
    `pyfunc_predict_fn` the model was logged with), when the frame the service builds is
    already what MLflow's schema enforcement would make of it; else None."""
    flavor = predictor.metadata.flavors.get("python_function", {})
    if flavor.get("loader_module") != "mlflow.sklearn":
        return None
    if len({column.type for column in columns}) != 1 or not all(c.required for c in columns):
        return None
    method: Callable[[Any], Any] = getattr(
        predictor.get_raw_model(), flavor.get("predict_fn", "predict")
    )
    return method


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
        direct = direct_method(predictor, columns)
    except ModelLoadError as error:
        raise ModelLoadError(f"cannot serve the model {uri} (registry {where}): {error}") from None
    except Exception as error:
        cause = scrub(f"{type(error).__name__}: {error}", settings.mlflow_tracking_uri)
        raise ModelLoadError(
            f"cannot load the model {uri} from the MLflow registry at {where}: {cause}"
        ) from None
    model = ServedModel(
        settings.model_name,
        str(version.version),
        uri,
        version.run_id,
        columns,
        predictor,
        profile,
        direct=direct,
    )
    log.info(
        "model loaded",
        extra={
            "model_uri": uri,
            "model_version": model.version,
            "inputs": len(columns),
            "called": "directly" if direct else "through pyfunc",
        },
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

"""HTTP endpoints: predictions of the served model, and what that model is.

    POST /predict         {"inputs": {<feature>: value, ...}}        one row
    POST /predict/batch   {"inputs": [{<feature>: value, ...}, ...]}  up to MODEL_MAX_BATCH_ROWS
    GET  /model           the served name, version, URI and input schema (the signature)

Predicting spends the model: both need a bearer token (auth.py). Inputs are checked against
the model's signature: a missing, unknown or mistyped feature is a 422 whose `loc` names it
(`["body", "inputs", "mean_radius"]`, in a batch `["body", "inputs", 3, "mean_radius"]`).
Every answer names the version that computed it: the body's `model_version` and the
`X-Model-Version` header.
"""

import logging
import math
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError
from pydantic import create_model as pydantic_model

from ..auth import authenticate
from ..settings import Settings
from .model import (
    FLOAT32_MAX,
    INTEGER_TYPES,
    NUMBER_TYPES,
    Column,
    ModelLoadError,
    ServedModel,
    load,
)
from .monitor import PredictionMetrics

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Model-Version"
Value = float | int | bool | str | None


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Value] = Field(description="One row: the model's input features by name")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[dict[str, Value]] = Field(
        min_length=1, description="Rows: each the model's input features by name"
    )


class Prediction(BaseModel):
    prediction: Any
    model_name: str
    model_version: str


class BatchPrediction(BaseModel):
    predictions: list[Any]
    model_name: str
    model_version: str


class InputField(BaseModel):
    name: str
    type: str
    required: bool
    example: Value = Field(description="A valid value: the training mean when known")


class ModelInfo(BaseModel):
    model_name: str
    model_version: str
    model_uri: str
    run_id: str | None
    inputs: list[InputField]
    drift_reference: bool = Field(description="A training profile came with the model")


class Serving:
    """The served model of one app: loaded at start (the app's lifespan), then used."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.metrics = PredictionMetrics(registry)
        self.model: ServedModel | None = None
        self.row_type: type[BaseModel] | None = None

    def start(self) -> None:
        """Load the model; raises ModelLoadError (the start fails) when it cannot."""
        try:
            model = load(self.settings)
        except ModelLoadError as error:
            log.error("refusing to start: %s", error)
            raise
        self.row_type = row_model(model)
        self.metrics.start(model, self.settings)
        self.model = model

    def status(self) -> str:
        return "ok" if self.model is not None else "not loaded"

    def served(self) -> tuple[ServedModel, type[BaseModel]]:
        if self.model is None or self.row_type is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded yet")
        return self.model, self.row_type

    def validate(self, rows: list[dict[str, Value]], batch: bool) -> list[dict[str, Any]]:
        """The rows checked against the signature, or a 422 naming each bad field."""
        _, row_type = self.served()
        checked, errors = [], []
        for index, row in enumerate(rows):
            try:
                checked.append(row_type.model_validate(row).model_dump())
            except ValidationError as error:
                where = ("body", "inputs", index) if batch else ("body", "inputs")
                errors += [
                    {**detail, "loc": (*where, *detail["loc"])}
                    for detail in error.errors(include_url=False, include_context=False)
                ]
        if errors:
            self.metrics.failed("invalid_input")
            raise RequestValidationError(errors)
        return checked

    def predict(self, rows: list[dict[str, Any]], endpoint: str) -> list[Any]:
        model, _ = self.served()
        start = time.perf_counter()
        try:
            output = model.predict(model.frame(rows))
        except Exception as error:
            self.metrics.failed("model_error")
            log.exception("the model failed", extra={"model_version": model.version})
            raise HTTPException(
                status.HTTP_500_INTERNAL_SERVER_ERROR,
                f"model version {model.version} failed on this input: {type(error).__name__}",
            ) from None
        predictions = to_list(output)
        self.metrics.observe(endpoint, time.perf_counter() - start, rows, predictions)
        return predictions


def row_model(model: ServedModel) -> type[BaseModel]:
    """A pydantic model of one row, from the signature: strict types, no unknown fields."""
    fields: dict[str, Any] = {}
    for column in model.columns:
        if column.type in NUMBER_TYPES:
            bound = FLOAT32_MAX if column.type == "float" else math.inf  # float32 or float64
            kind: Any = Annotated[
                float, Field(strict=True, allow_inf_nan=False, ge=-bound, le=bound)
            ]
        elif column.type in INTEGER_TYPES:
            bits = 63 if column.type == "long" else 31  # int64 or int32 in the model's frame
            kind = Annotated[int, Field(strict=True, ge=-(2**bits), lt=2**bits)]
        elif column.type == "boolean":
            kind = StrictBool
        else:
            kind = StrictStr
        fields[column.name] = (kind, ...) if column.required else (kind | None, None)
    config = ConfigDict(extra="forbid", strict=False)
    row: type[BaseModel] = pydantic_model("ModelInputs", __config__=config, **fields)
    return row


def to_list(output: Any) -> list[Any]:
    """The model's output as JSON values, one per row."""
    if hasattr(output, "to_dict") and hasattr(output, "columns"):  # a DataFrame
        records: list[Any] = output.to_dict(orient="records")
        return records
    if hasattr(output, "tolist"):  # numpy arrays, pandas Series
        values: list[Any] = output.tolist()
        return values
    return list(output)


def example(model: ServedModel, column: Column) -> Value:
    """A value the model accepts for the column (the sanity test sends a row of them)."""
    if column.type in NUMBER_TYPES:
        reference = (model.profile or {}).get(column.name)
        return round(reference.mean, 6) if reference else 0.0
    defaults: dict[str, Value] = {"boolean": False, "string": ""}
    return defaults.get(column.type, 0)


async def get_serving(request: Request) -> Serving:
    serving: Serving = request.app.state.serving
    return serving


ServingDep = Annotated[Serving, Depends(get_serving)]


def install(app: FastAPI, settings: Settings, registry: CollectorRegistry) -> None:
    """Add the prediction endpoints; the app's lifespan calls `app.state.serving.start()`."""
    app.state.serving = Serving(settings, registry)

    @app.post(
        "/predict",
        response_model=Prediction,
        tags=["serving"],
        dependencies=[Depends(authenticate)],
    )
    async def predict(body: PredictRequest, serving: ServingDep, response: Response) -> Prediction:
        """Predict one row."""
        # On the event loop, not in a thread: the model call is CPU work that a thread would
        # not run in parallel (the GIL), only later, after a hop and a fight for the GIL.
        rows = serving.validate([body.inputs], batch=False)
        prediction = serving.predict(rows, "single")[0]
        model, _ = serving.served()
        response.headers[VERSION_HEADER] = model.version
        return Prediction(prediction=prediction, model_name=model.name, model_version=model.version)

    @app.post(
        "/predict/batch",
        response_model=BatchPrediction,
        tags=["serving"],
        dependencies=[Depends(authenticate)],
    )
    async def predict_batch(
        body: BatchRequest, serving: ServingDep, response: Response
    ) -> BatchPrediction:
        """Predict many rows in one call (at most MODEL_MAX_BATCH_ROWS)."""
        limit = serving.settings.model_max_batch_rows
        if len(body.inputs) > limit:
            serving.metrics.failed("invalid_input")
            raise RequestValidationError(
                [
                    {
                        "type": "too_long",
                        "loc": ("body", "inputs"),
                        "msg": f"at most {limit} rows per batch (MODEL_MAX_BATCH_ROWS), "
                        f"got {len(body.inputs)}",
                        "input": None,
                    }
                ]
            )
        rows = serving.validate(body.inputs, batch=True)
        predictions = serving.predict(rows, "batch")
        model, _ = serving.served()
        response.headers[VERSION_HEADER] = model.version
        return BatchPrediction(
            predictions=predictions, model_name=model.name, model_version=model.version
        )

    @app.get("/model", response_model=ModelInfo, tags=["serving"])
    def model_info(serving: ServingDep, response: Response) -> ModelInfo:
        """The served model: name, version, where it came from and its input schema."""
        model, _ = serving.served()
        response.headers[VERSION_HEADER] = model.version
        return ModelInfo(
            model_name=model.name,
            model_version=model.version,
            model_uri=model.uri,
            run_id=model.run_id,
            inputs=[
                InputField(name=c.name, type=c.type, required=c.required, example=example(model, c))
                for c in model.columns
            ],
            drift_reference=model.profile is not None,
        )

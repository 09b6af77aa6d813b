"""The training reference profile of a model, and the drift of live inputs against it.

The pipeline logs the profile with every registered model (the MLflow artifact
`reference_profile.json`): for each input column and for the predictions, the mean, the
standard deviation and a histogram of the training data (up to 10 bins: quantile edges, or
one bin per value when a column has few distinct values). The serving side counts live values
into the same bins and compares the two histograms with the population stability index
(PSI): under 0.1 no shift, 0.1-0.2 a moderate one, above 0.2 a significant one.
"""

import bisect
import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from threading import Lock
from typing import Any

ARTIFACT = "reference_profile.json"
FORMAT_VERSION = 1
MAX_BINS = 10
PREDICTION = "prediction"  # the profile's column of the model's outputs
EPSILON = 1e-4  # stands in for an empty bin's share: PSI stays finite


@dataclass(frozen=True)
class ColumnProfile:
    mean: float
    std: float
    edges: tuple[float, ...]  # inner bin edges, ascending: len(edges) + 1 bins
    ratios: tuple[float, ...]  # the training data's share in each bin

    def bin_of(self, value: float) -> int:
        return bisect.bisect_right(self.edges, value)

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "edges": self.edges, "ratios": self.ratios}


def column_profile(values: Sequence[float]) -> ColumnProfile:
    """The profile of one column of training data."""
    data = sorted(float(value) for value in values if not math.isnan(float(value)))
    if not data:
        raise ValueError("a column without values cannot be profiled")
    count = len(data)
    mean = sum(data) / count
    std = math.sqrt(sum((value - mean) ** 2 for value in data) / count)
    distinct = sorted(set(data))
    if len(distinct) <= MAX_BINS:  # few values (labels, flags): a bin each
        edges = [(low + high) / 2 for low, high in itertools.pairwise(distinct)]
    else:
        quantiles = [
            data[min(count - 1, (count * step) // MAX_BINS)] for step in range(1, MAX_BINS)
        ]
        edges = sorted(set(quantiles))
    counts = [0] * (len(edges) + 1)
    for value in data:
        counts[bisect.bisect_right(edges, value)] += 1
    return ColumnProfile(mean, std, tuple(edges), tuple(c / count for c in counts))


def build_profile(
    columns: Mapping[str, Sequence[float]], predictions: Sequence[float]
) -> dict[str, Any]:
    """The reference profile (JSON-ready) of training inputs and the model's predictions."""
    return {
        "format": FORMAT_VERSION,
        "rows": len(predictions),
        "columns": {name: column_profile(values).as_dict() for name, values in columns.items()},
        PREDICTION: column_profile(predictions).as_dict(),
    }


def parse_profile(document: Mapping[str, Any]) -> dict[str, ColumnProfile]:
    """The columns of a profile (the prediction under PREDICTION); ValueError if malformed."""
    if document.get("format") != FORMAT_VERSION:
        raise ValueError(f"unknown profile format {document.get('format')!r}, expected 1")
    entries = {**document["columns"], PREDICTION: document[PREDICTION]}
    parsed = {}
    for name, entry in entries.items():
        edges = tuple(float(edge) for edge in entry["edges"])
        ratios = tuple(float(ratio) for ratio in entry["ratios"])
        if len(ratios) != len(edges) + 1 or list(edges) != sorted(edges):
            raise ValueError(f"column {name!r}: {len(edges)} edges need {len(edges) + 1} ratios")
        parsed[name] = ColumnProfile(float(entry["mean"]), float(entry["std"]), edges, ratios)
    return parsed


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two histograms (shares per bin, same bins)."""
    total = 0.0
    for reference, live in zip(expected, actual, strict=True):
        reference, live = max(reference, EPSILON), max(live, EPSILON)
        total += (live - reference) * math.log(live / reference)
    return total


class DriftWindow:
    """The last `size` live values of one column, counted into its reference bins."""

    def __init__(self, reference: ColumnProfile, size: int, min_rows: int) -> None:
        self.reference = reference
        self.min_rows = min_rows
        self._bins: deque[int] = deque(maxlen=size)
        self._counts = [0] * len(reference.ratios)
        self._sum = 0.0
        self._values: deque[float] = deque(maxlen=size)
        self._lock = Lock()

    def add(self, values: Iterable[float]) -> list[int]:
        """Count the values in; their bins."""
        bins = []
        with self._lock:
            for value in values:
                index = self.reference.bin_of(value)
                if len(self._bins) == self._bins.maxlen:
                    self._counts[self._bins[0]] -= 1
                    self._sum -= self._values[0]
                self._bins.append(index)
                self._values.append(value)
                self._counts[index] += 1
                self._sum += value
                bins.append(index)
        return bins

    def rows(self) -> int:
        return len(self._bins)

    def psi(self) -> float:
        """PSI of the window against the reference; NaN under `min_rows` (not yet known)."""
        with self._lock:
            rows = len(self._bins)
            if rows < max(self.min_rows, 1):
                return math.nan
            return psi(self.reference.ratios, [count / rows for count in self._counts])

    def zscore(self) -> float:
        """How many standard errors the window's mean is from the training mean."""
        with self._lock:
            rows = len(self._values)
            if rows < max(self.min_rows, 1) or self.reference.std == 0:
                return math.nan
            error = self.reference.std / math.sqrt(rows)
            return (self._sum / rows - self.reference.mean) / error

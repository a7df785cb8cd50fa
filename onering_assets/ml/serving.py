"""Predicting late arrivals from the champion's ONNX form, with online feature lookups.

:class:`Predictor` is the whole serving path as plain code, called by the BentoML service
(``platform/ml/bento_service/service.py``) and by ``bench/ml.py``'s bare endpoint alike:
validate each request (:func:`onering_assets.ml.inputs.parse_request`; a bad field is a
:class:`RequestError` naming the row and field), derive ``dep_hour``/``day_of_week``, look
the features up in the online store, fill what is missing with the model's fill values and
say so, run onnxruntime. What the service does not know is answered, never refused with a
500: an entity with no online row gets the training medians for that view, a null feature
its median, and a carrier or airport the model never saw is encoded as an unseen category
(all zeros, exactly as Spark's ``handleInvalid="keep"`` does); each is named in
``fallbacks``.

The online store holds each entity's newest values, so the features are those known now,
whatever the request's departure; only the derived fields come from ``sched_dep_at``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onering_assets.errors import ConfigError, OneRingError
from onering_assets.ml.inputs import (
    CATEGORICAL_COLUMNS,
    ModelInputError,
    Request,
    derived,
    parse_request,
)
from onering_assets.ml.serving_model import Champion, ServingSpec

MAX_BATCH = 10_000
# Feature refs -> entity rows (join keys) -> each feature's values, one per row (None: none).
OnlineLookup = Callable[[Sequence[str], Sequence[Mapping[str, str]]], Mapping[str, Sequence[Any]]]


class RequestError(OneRingError):
    """A request is invalid; ``field`` (and ``row`` in a batch) say where. HTTP 400."""

    retryable = False

    def __init__(self, field: str, message: str, row: int | None = None) -> None:
        where = field if row is None else f"flights[{row}].{field}"
        super().__init__(f"{where}: {message}")
        self.field = field
        self.row = row
        self.detail = message

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": str(self), "field": self.field}
        if self.row is not None:
            body["row"] = self.row
        return body


@dataclass(frozen=True)
class ViewKeys:
    """A feature view the model reads: its join keys and the model's features from it."""

    name: str
    join_keys: tuple[str, ...]
    features: tuple[str, ...]


def model_views(spec: ServingSpec) -> tuple[ViewKeys, ...]:
    """The views behind ``spec.feature_refs``, with their join keys from ``views.yml``.

    Raises:
        ConfigError: the model reads a view that is no longer declared.
    """
    from onering_assets.features.views import load_views

    declared = load_views()
    names = list(dict.fromkeys(ref.partition(":")[0] for ref in spec.feature_refs))
    out = []
    for name in names:
        view = declared.view(name)  # raises ConfigError naming the declared views
        features = tuple(r.partition(":")[2] for r in spec.feature_refs if r.startswith(name + ":"))
        out.append(ViewKeys(name, view.join_keys, features))
    return tuple(out)


def known_categories(onnx: bytes) -> dict[str, frozenset[str]]:
    """Each categorical input's training labels, read from the ONNX form's label encoders."""
    import onnx as onnx_lib

    graph = onnx_lib.load_model_from_string(onnx).graph
    known: dict[str, frozenset[str]] = {}
    for node in graph.node:
        if node.op_type != "LabelEncoder" or node.input[0] not in CATEGORICAL_COLUMNS:
            continue
        for attribute in node.attribute:
            if attribute.name == "keys_strings":
                known[node.input[0]] = frozenset(s.decode() for s in attribute.strings)
    return known


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Predictor:
    """The champion's ONNX form behind request validation and an online feature lookup."""

    def __init__(self, champion: Champion, lookup: OnlineLookup) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One row (or a few thousand) of a linear model: threads only add hand-offs.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            champion.onnx, options, providers=["CPUExecutionProvider"]
        )
        self.spec = champion.spec
        self.lookup = lookup
        self.views = model_views(self.spec)
        self.known = known_categories(champion.onnx)
        self.refs = list(self.spec.feature_refs)
        self.join_keys = tuple(dict.fromkeys(k for v in self.views for k in v.join_keys))
        dtypes = {i.name: i.type for i in self.session.get_inputs()}
        declared = [i.name for i in self.spec.onnx_inputs]
        if sorted(dtypes) != sorted(declared):
            raise ConfigError(
                f"{self.spec.model_name} version {self.spec.version}: serving.json's ONNX "
                f"inputs {declared} are not the model's {sorted(dtypes)}; retrain it."
            )
        self.float_dtype = {
            name: np.float64 if t == "tensor(double)" else np.float32 for name, t in dtypes.items()
        }

    @property
    def version(self) -> str:
        return self.spec.version

    def predict_one(self, payload: Any) -> dict[str, Any]:
        """``{probability, late, model_version, fallbacks}`` for one flight.

        Raises:
            RequestError: a field is missing or invalid (the message names it).
        """
        return self._predict([self.parse(payload, None)])[0]

    def predict_batch(self, payloads: Any) -> list[dict[str, Any]]:
        """One answer per flight, in order; one bad flight refuses the batch naming its row.

        Raises:
            RequestError: ``payloads`` is not a list of 1 to :data:`MAX_BATCH` flights, or a
                flight's field is invalid (``flights[i].field: …``).
        """
        if not isinstance(payloads, list) or not payloads:
            raise RequestError("flights", "required: a non-empty list of flights")
        if len(payloads) > MAX_BATCH:
            raise RequestError("flights", f"{len(payloads)} flights; at most {MAX_BATCH} a call")
        return self._predict([self.parse(p, i) for i, p in enumerate(payloads)])

    @staticmethod
    def parse(payload: Any, row: int | None = None) -> Request:
        """One validated request (``row``: its index in a batch, for the error).

        Raises:
            RequestError: a field is missing or invalid.
        """
        try:
            return parse_request(payload)
        except ModelInputError as err:
            raise RequestError(err.field, str(err).partition(": ")[2], row) from None

    def _predict(self, requests: list[Request]) -> list[dict[str, Any]]:
        feeds, fallbacks = self.prepare(requests)
        probabilities = self.probabilities(feeds)
        return [
            {
                "probability": float(p),
                "late": bool(p >= self.spec.threshold),
                "model_version": self.spec.version,
                "fallbacks": fallbacks[i],
            }
            for i, p in enumerate(probabilities)
        ]

    def prepare(
        self, requests: list[Request]
    ) -> tuple[dict[str, np.ndarray], list[list[dict[str, Any]]]]:
        """The ONNX feeds for validated requests (features looked up, filled), and fallbacks."""
        rows = [{k: getattr(r, k) for k in self.join_keys} for r in requests]
        columns, fallbacks = self._features(requests, self.lookup(self.refs, rows))
        return self._feeds(requests, columns), fallbacks

    def probabilities(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """P(late) per row: the ONNX form alone."""
        output = self.session.run([self.spec.probability_output], dict(feeds))[0]
        return np.asarray(output, dtype=np.float64)[:, 1]

    def _features(
        self, requests: list[Request], found: Mapping[str, Sequence[Any]]
    ) -> tuple[dict[str, list[float]], list[list[dict[str, Any]]]]:
        """Each feature's values, filled where missing, and each row's fallbacks."""
        fills = self.spec.fill_values
        columns: dict[str, list[float]] = {}
        fallbacks: list[list[dict[str, Any]]] = [self._unseen(r) for r in requests]
        for view in self.views:
            values = {f: list(found.get(f) or [None] * len(requests)) for f in view.features}
            for i, request in enumerate(requests):
                absent = [f for f in view.features if _missing(values[f][i])]
                if not absent:
                    continue
                for f in absent:
                    values[f][i] = fills[f]
                fallbacks[i].append(self._filled(view, request, absent))
            for f in view.features:
                columns[f] = [float(v) for v in values[f]]
        return columns, fallbacks

    def _filled(self, view: ViewKeys, request: Request, absent: list[str]) -> dict[str, Any]:
        keys = ", ".join(f"{k}={getattr(request, k)}" for k in view.join_keys)
        used = {f: self.spec.fill_values[f] for f in absent}
        if len(absent) == len(view.features):
            kind, why = "no_online_row", f"no online features for {keys}"
        else:
            kind, why = "null_feature", f"{', '.join(absent)} null online for {keys}"
        return {
            "kind": kind,
            "subject": view.name,
            "message": f"{view.name}: {why}; used the model's fill values (training medians)",
            "filled": used,
        }

    def _unseen(self, request: Request) -> list[dict[str, Any]]:
        out = []
        for column, labels in self.known.items():
            value = getattr(request, column)
            if value not in labels:
                out.append(
                    {
                        "kind": "unseen_category",
                        "subject": column,
                        "message": f"{column}: {value!r} was not in the training data; the "
                        "model reads it as an unseen category (no learned effect)",
                    }
                )
        return out

    def _feeds(
        self, requests: list[Request], columns: dict[str, list[float]]
    ) -> dict[str, np.ndarray]:
        fields = [derived(r.sched_dep_at) for r in requests]
        feeds: dict[str, np.ndarray] = {}
        n = len(requests)
        for item in self.spec.onnx_inputs:
            if item.type == "string":
                values: list[Any] = [getattr(r, item.name) for r in requests]
                feeds[item.name] = np.array(values, dtype=object).reshape(n, 1)
                continue
            values = columns[item.name] if item.name in columns else [f[item.name] for f in fields]
            feeds[item.name] = np.array(values, dtype=self.float_dtype[item.name]).reshape(n, 1)
        return feeds

"""Beam glue for enrichment: a RunInference ModelHandler over the Enricher (rows are built in enrich/rows.py)."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from finpulse.models.artifacts.registry import load_registry
from finpulse.models.engine.inference import Enricher, Prediction
from finpulse.pipeline.enrich.companies import load_gazetteer, name_spans
from finpulse.pipeline.enrich.tickers import cashtag_spans
from finpulse.pipeline.runtime import metrics
from finpulse.pipeline.runtime.settings import InferenceSettings

log = logging.getLogger(__name__)
DEFAULT_SETTINGS = InferenceSettings()  # frozen, so one shared instance is a safe default argument


@dataclass(frozen=True)
class EnrichError:
    """A record the models could not process; it becomes a dead letter (stage "enrich")."""

    error: str


def settle_heap() -> None:
    """Collect once, then hide everything alive now (models, tokenizers, Beam, imported modules) from the
    garbage collector (`gc.freeze`).

    Why: a worker holds millions of long-lived objects, and every full collection walked all of them:
    about 0.3 s of CPU each, once per ~1,000 posts here, landing in whichever stage was running. Frozen,
    a full collection walks only what the stream itself created since. Cyclic garbage made before the
    freeze would stay forever, hence the collection first."""
    gc.collect()
    gc.freeze()


# Models already loaded in this process, by (registry, inference settings). Beam's DaskRunner tears
# its DoFns down after every task (one per bag partition); RunInference's shared handle keeps the
# most recently used model alive between them (measured: one load per Dask worker even without this
# cache), but only that one. Keyed here, every registry a worker has loaded stays loaded, so jobs
# with different registries on one cluster do not reload each other's models task after task.
_LOADED: dict[tuple[str | None, InferenceSettings], Enricher] = {}
_LOADED_LOCK = threading.Lock()
LOADS = 0  # model loads in this process (tests and the bench check that tasks share one)


class FinpulseModelHandler(ModelHandler["str | None", PredictionResult, Enricher]):
    """Loads the registry's models once per worker process and enriches whole batches.

    A failing batch is retried text by text, so one bad text costs only itself. `None` items
    (dead letters travelling along the same chain) pass through with no inference. Each result is
    a PredictionResult whose `inference` is a Prediction, an EnrichError, or None for a `None` item.
    """

    def __init__(self, registry_path: str | None = None, settings: InferenceSettings = DEFAULT_SETTINGS, batch_size: int = 512,
                 large_model: bool | None = None) -> None:
        self._registry_path = registry_path
        self._settings = settings
        self._batch_size = batch_size
        self._large_model_override = large_model  # not Beam's `_large_model`, which is a bool
        self._version: str | None = None

    def load_model(self) -> Enricher:
        """The registry's models, loaded once per process (see _LOADED)."""
        key = (self._registry_path, self._settings)
        with _LOADED_LOCK:
            enricher = _LOADED.get(key)
            if enricher is None:
                enricher = _LOADED[key] = self._load()
        return enricher

    def _load(self) -> Enricher:
        global LOADS
        LOADS += 1
        # cashtags and gazetteer names are scored by the span head beside the ORG entities the NER head finds
        enricher = Enricher(load_registry(self._registry_path), self._settings, mention_finder=company_spans)
        settle_heap()
        # one line per model copy: with several worker processes it says whether they share one
        log.info("models loaded in process %d (%s)", os.getpid(),
                 "one copy shared by this machine's workers" if self.share_model_across_processes()
                 else "this process's own copy")
        return enricher

    def run_inference(self, batch: Sequence[str | None], model: Enricher, inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        items = list(batch)  # Beam may hand us a tuple
        texts = [t for t in items if t is not None]
        began = time.perf_counter()
        try:
            preds: list[Prediction | EnrichError] = list(model.predict(texts))
        except Exception:  # noqa: BLE001 - isolate the culprit instead of failing the bundle
            log.exception("batch of %d failed; retrying one by one", len(texts))
            preds = []
            for t in texts:
                try:
                    preds.append(model.predict([t])[0])
                except Exception as exc:  # noqa: BLE001
                    preds.append(EnrichError(f"{type(exc).__name__}: {exc}"))
        if texts:
            metrics.observe_batch(len(texts), time.perf_counter() - began)
        it = iter(preds)
        version = self.model_version()
        return [PredictionResult(t, None if t is None else next(it), version) for t in items]

    def model_version(self) -> str:
        """From the registry, not the model: a model shared across processes is a proxy that
        exposes only methods."""
        if self._version is None:
            self._version = load_registry(self._registry_path).model_version
        return self._version

    def batch_elements_kwargs(self) -> dict[str, Any]:
        # Our engine batches by token budget internally; hand it whole bundles.
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}

    def share_model_across_processes(self) -> bool:
        """One model per machine, whatever the number of SDK worker processes: on by default on a
        GPU (one copy in GPU memory, not one per process), off on CPU where each process wants
        its own copy on its own cores. `large_model=True/False` overrides."""
        if self._large_model_override is not None:
            return self._large_model_override
        return self._settings.device.startswith("cuda")

    def get_metrics_namespace(self) -> str:
        return "finpulse"


def company_spans(text: str) -> list[tuple[int, int]]:
    """The spans per-company sentiment scores besides ORG entities: cashtags, then gazetteer names."""
    return cashtag_spans(text) + name_spans(text, load_gazetteer())

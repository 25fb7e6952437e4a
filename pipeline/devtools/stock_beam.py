"""The benchmark baseline: what a user would otherwise write with stock Beam.

Three RunInference steps with Beam's `HuggingFacePipelineModelHandler` (text-classification for
sentiment and topic, token-classification with "simple" entity aggregation for NER), default
batching, each loading the *same fine-tuned weights* as a plain Hugging Face model: the merged
encoder plus the task's head. Sequence heads pool by mean like ours, so the baseline's labels
agree with ours and the comparison is about speed alone.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
import types
from typing import Any


def install_tensorflow_shim() -> None:
    """Beam's huggingface_inference imports tensorflow and transformers.TFAutoModel at module top;
    transformers 5 has no TF classes (apache/beam#29621). A stub module with a __spec__ (torch
    dynamo inspects it) and a placeholder TFAutoModel let the module import; no TF code runs."""
    import importlib.machinery

    if "tensorflow" not in sys.modules:
        stub = types.ModuleType("tensorflow")
        stub.__spec__ = importlib.machinery.ModuleSpec("tensorflow", loader=None)
        # only used in type hints at import time; a stub module has no declared attributes
        stub.Tensor = type("Tensor", (), {})  # type: ignore[attr-defined]
        sys.modules["tensorflow"] = stub
    from transformers import Pipeline  # noqa: F401  (import order matters: see DESIGN.md)

    # transformers may replace its module object in sys.modules while importing: patch that one.
    module = sys.modules["transformers"]
    try:
        from transformers import TFAutoModel  # type: ignore[attr-defined]  # noqa: F401  (absent from transformers 5)
    except ImportError:
        module.TFAutoModel = type("TFAutoModel", (), {})  # type: ignore[attr-defined]  # the placeholder


@functools.cache
def _hf_classes() -> dict[str, type]:
    """The plain HF model classes the baseline uses, built once (transformers imports lazily).

    Instances pickle as "load me from my saved folder": Beam pickles each handler, model included,
    into the pipeline graph (bz2-compressed, then unpickled again for the worker), which for three
    copies of the weights took about two minutes of a two-core machine before any post was read.
    A stock-Beam user would hand the handler a model folder instead; this is the same thing.
    """
    from transformers import BertForSequenceClassification, BertForTokenClassification
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPoolBertForSequenceClassification(BertForSequenceClassification):
        """BertForSequenceClassification that pools by masked mean, as the MiniLM encoder was trained."""

        def forward(self, input_ids=None, attention_mask=None, **kwargs):  # type: ignore[override]
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))

        def __reduce__(self):
            return _load_saved, ("sequence", self.name_or_path)

    class SavedBertForTokenClassification(BertForTokenClassification):
        def __reduce__(self):
            return _load_saved, ("token", self.name_or_path)

    # The pipelines check the class name against their lists of supported models and log a long
    # error otherwise; apart from pooling and pickling the behaviour is the parent's.
    MeanPoolBertForSequenceClassification.__name__ = "BertForSequenceClassification"
    SavedBertForTokenClassification.__name__ = "BertForTokenClassification"
    return {"sequence": MeanPoolBertForSequenceClassification, "token": SavedBertForTokenClassification}


def _load_saved(kind: str, folder: str) -> Any:
    cls: Any = _hf_classes()[kind]
    return cls.from_pretrained(folder).eval()


def export_hf_models(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The default artifact as three plain HF models saved under `folder` (safetensors), loaded back.

    Returns task -> (pipeline task, model, tokenizer).
    """
    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.artifacts.registry import load_registry

    reg = load_registry()
    loaded = load_artifact(reg.sentiment.artifact_path)
    encoder_state = loaded.model.encoder.state_dict()
    models: dict[str, Any] = {}
    for task, hf_task in (("sentiment", "text-classification"), ("topic", "text-classification"), ("ner", "token-classification")):
        labels = reg.task(task).labels
        base_config: Any = loaded.model.encoder.config  # a transformers config; torch types it Tensor | Module
        config = base_config.__class__.from_dict(base_config.to_dict())
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
        kind = "token" if task == "ner" else "sequence"
        model = _hf_classes()[kind](config)
        model.bert.load_state_dict(encoder_state, strict=False)
        model.classifier.load_state_dict(loaded.model.heads[task].state_dict())
        saved = os.path.join(os.fspath(folder), task)
        model.save_pretrained(saved)  # safetensors
        models[task] = (hf_task, _load_saved(kind, saved), loaded.tokenizer)
    return models


def _timed(handler, key: str, log: str):
    """Wrap a handler so every inference call appends `key start end count batch` to `log`.

    Beam pickles the handler (and this closure by value), so the record goes through a file.
    """
    inner_run = handler.run_inference

    def run_inference(batch, model, inference_args=None):
        start = time.time()
        out = list(inner_run(list(batch), model, inference_args))
        end = time.time()
        with open(log, "a") as fh:
            fh.write(f"{key} {start} {end} {len(out)}\n")
        return out

    handler.run_inference = run_inference
    return handler


def _new_log(prefix: str) -> str:
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".log")
    os.close(fd)
    return path


def _span(log: str, key: str) -> tuple[float, float, int, list[int]]:
    with open(log) as fh:
        rows = [line.split() for line in fh if line.startswith(key + " ")]
    sizes = [int(r[3]) for r in rows]
    return min(float(r[1]) for r in rows), max(float(r[2]) for r in rows), sum(sizes), sizes


def run_baseline(texts: list[str], run_id: str = "baseline") -> dict:
    """Stock Beam: three RunInference steps on FnApiRunner; returns posts/s and batch sizes seen."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    install_tensorflow_shim()
    from apache_beam.ml.inference.huggingface_inference import HuggingFacePipelineModelHandler

    folder = tempfile.TemporaryDirectory(prefix="finpulse-baseline-models-")
    models = export_hf_models(folder.name)
    log = _new_log("finpulse-baseline-")
    with folder, beam.Pipeline(runner=FnApiRunner()) as p:
        posts = p | beam.Create(texts)
        for task, (hf_task, model, tokenizer) in models.items():
            extra = {"aggregation_strategy": "simple"} if task == "ner" else {}
            handler = HuggingFacePipelineModelHandler(task=hf_task, model=model, device="CPU",
                                                      load_pipeline_args={"tokenizer": tokenizer, **extra})
            _ = posts | f"RunInference-{task}" >> RunInference(_timed(handler, f"{run_id}-{task}", log))
    spans = [_span(log, f"{run_id}-{t}") for t in models]
    elapsed = max(s[1] for s in spans) - min(s[0] for s in spans)
    assert all(s[2] == len(texts) for s in spans), "the baseline did not process every post"
    sizes = [b for s in spans for b in s[3]]
    return {"baseline_posts_per_s": round(len(texts) / elapsed, 1),
            "baseline_batch_sizes": f"{min(sizes)}-{max(sizes)} (mean {sum(sizes) / len(sizes):.1f})"}


def run_ours_in_beam(texts: list[str], device: str, run_id: str = "ours", precision: str = "auto") -> dict:
    """Our handler in the same kind of Beam pipeline, timed the same way."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from finpulse.pipeline.enrich.handler import FinpulseModelHandler
    from finpulse.pipeline.runtime.settings import InferenceSettings

    log = _new_log("finpulse-ours-")
    with beam.Pipeline(runner=FnApiRunner()) as p:
        handler = _timed(FinpulseModelHandler(None, InferenceSettings(device=device, precision=precision)), run_id, log)
        _ = p | beam.Create(texts) | RunInference(handler)
    start, end, count, _ = _span(log, run_id)
    assert count == len(texts)
    return {"ours_posts_per_s": round(len(texts) / (end - start), 1)}



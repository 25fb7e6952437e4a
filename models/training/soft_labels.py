"""Teacher soft labels for distillation: every real text soft-labelled by a sentiment teacher, resumably.

Why: the accurate profile (mpnet) reads tweets and news ~5 points better than the fast one but costs
~8x the compute per token; distilling it into the fast profile needs its reading of many texts, and
on a CPU that takes hours, so the work is cut into chunks that survive an interruption. Each chunk is
one JSONL file (`text`, `source`, teacher `logits` in the task's label order) written under a temporary
name and renamed when complete; `manifest.json` records the teacher, the input's fingerprint, which
chunks are done and the labelling rate. A rerun with the same inputs continues with the first chunk not
done; a rerun with other inputs or another teacher is refused (a folder mixing two is useless).

Texts are those of the data files given (`finpulse distill label --data FILE...`): classification CSVs
(the `text` column), entity JSONL (`text`), CoNLL files (each sentence, tokens joined by spaces),
de-duplicated after normalisation, in file order. Logits are the teacher head's on the first
`max_length` tokens, the way `finpulse train --teacher` computes them (models/training/train.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finpulse.models.data import DataFormatError, normalise, read_lines, read_texts
from finpulse.schemas.errors import FinpulseError

MANIFEST = "manifest.json"


class LabellingMismatch(FinpulseError):
    """The output folder holds labels of other texts or another teacher."""


@dataclass(frozen=True)
class SourceText:
    source: str  # the file's name
    text: str


def file_texts(path: str | Path) -> list[str]:
    """The texts of one data file, by its kind: CSV `text` column, JSONL `text`, CoNLL sentences."""
    path = Path(path)
    if path.suffix == ".csv":
        return read_texts(path)
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(read_lines(path), start=1):
            if line.strip():
                try:
                    out.append(json.loads(line)["text"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataFormatError(f"{path}:{n}: expected a JSON object with a 'text' field") from None
        return out
    if path.suffix == ".txt":  # CoNLL: `token TAG` lines, a blank line between sentences
        sentences, words = [], []
        for line in read_lines(path) + [""]:
            if line.strip():
                words.append(line.split()[0])
            elif words:
                sentences.append(" ".join(words))
                words = []
        return sentences
    raise DataFormatError(f"{path}: unknown kind of data file; give a .csv (text column), .jsonl (text) or CoNLL .txt")


def corpus(paths: Sequence[str | Path]) -> list[SourceText]:
    """The texts of the files, de-duplicated after normalisation, first occurrence kept, in order."""
    seen: set[str] = set()
    out = []
    for p in paths:
        for t in file_texts(p):
            key = normalise(t)
            if key and key not in seen:
                seen.add(key)
                out.append(SourceText(Path(p).name, t))
    return out


def fingerprint(texts: Sequence[SourceText]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.text.encode("utf-8") + b"\x00")
    return h.hexdigest()[:16]


def chunk_name(k: int) -> str:
    return f"chunk-{k:05d}.jsonl"


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def label_corpus(
    texts: Sequence[SourceText],
    out: Path,
    teacher: str,
    label_fn: Callable[[list[str]], list[list[float]]],
    labels: Sequence[str],
    chunk_size: int = 512,
    max_chunks: int | None = None,
    progress: Callable[[Iterator[int], int, int], Iterator[int]] | None = None,
) -> dict[str, Any]:
    """Label the chunks not yet done (at most `max_chunks` this call) and return the manifest.

    `label_fn(texts)` gives one logit row per text; `teacher` names it (registry version). The rate is
    texts per second of labelling, over every run that wrote to the folder."""
    out.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(texts)
    n_chunks = (len(texts) + chunk_size - 1) // chunk_size
    manifest = read_manifest(out) or {
        "teacher": teacher,
        "labels": list(labels),
        "fingerprint": fp,
        "texts": len(texts),
        "chunk_size": chunk_size,
        "chunks": n_chunks,
        "done": [],
        "seconds": 0.0,
        "labelled": 0,
    }
    for key, want in (("teacher", teacher), ("fingerprint", fp), ("chunk_size", chunk_size), ("labels", list(labels))):
        if manifest[key] != want:
            raise LabellingMismatch(
                f"{out} holds labels with {key} {manifest[key]!r}, not {want!r}; "
                "use another --out folder (or delete this one to start again)"
            )
    done = set(manifest["done"])
    todo = [k for k in range(n_chunks) if k not in done or not (out / chunk_name(k)).is_file()]
    if max_chunks is not None:
        todo = todo[:max_chunks]
    steps: Iterator[int] = iter(todo)
    if progress is not None:
        steps = progress(steps, len(todo), len(done))
    for k in steps:
        rows = texts[k * chunk_size : (k + 1) * chunk_size]
        started = time.perf_counter()
        logits = label_fn([r.text for r in rows])
        manifest["seconds"] = round(manifest["seconds"] + time.perf_counter() - started, 6)
        tmp = out / (chunk_name(k) + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for r, lg in zip(rows, logits, strict=True):
                fh.write(
                    json.dumps(
                        {"text": r.text, "source": r.source, "logits": [round(x, 4) for x in lg]}, ensure_ascii=False
                    )
                    + "\n"
                )
        os.replace(tmp, out / chunk_name(k))
        done.add(k)
        manifest["done"] = sorted(done)
        manifest["labelled"] = sum(len(texts[j * chunk_size : (j + 1) * chunk_size]) for j in done)
        manifest["texts_per_s"] = round(manifest["labelled"] / manifest["seconds"], 2) if manifest["seconds"] else None
        _write_json(out / MANIFEST, manifest)
    return manifest


def read_soft_labels(out: str | Path) -> list[dict[str, Any]]:
    """Every labelled row of a folder (the chunks done so far), in corpus order."""
    out = Path(out)
    manifest = read_manifest(out)
    if manifest is None:
        raise DataFormatError(f"{out}: no {MANIFEST}; run `finpulse distill label --out {out}` first")
    rows = []
    for k in manifest["done"]:
        # split on "\n" only: str.splitlines also breaks at U+2028, U+0085, ... which tweets contain raw
        rows += [json.loads(line) for line in (out / chunk_name(k)).read_text(encoding="utf-8").split("\n") if line]
    return rows


def teacher_fn(
    profile: str, device: str = "cpu", batch_size: int = 64
) -> tuple[str, list[str], Callable[[list[str]], list[list[float]]]]:
    """(version, labels, logits function) of a profile's sentiment model, as `finpulse train --teacher` reads it."""
    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.encoding import encode_texts
    from finpulse.models.engine.inference import use_bf16
    from finpulse.models.evaluation.evaluate import predict_logits

    tm = load_registry(profile).sentiment
    loaded = load_artifact(tm.artifact_path, device)
    spec = loaded.model.tasks["sentiment"]
    bf16 = use_bf16("auto", device)

    def fn(texts: list[str]) -> list[list[float]]:
        enc = encode_texts(loaded.tokenizer, texts, [0] * len(texts), loaded.config.max_length)
        logits = predict_logits(
            loaded.model, enc, spec, loaded.tokenizer.pad_token_id, device, batch_size=batch_size, bf16=bf16
        )
        return [lg.tolist() for lg in logits]

    return tm.version, list(spec.labels), fn

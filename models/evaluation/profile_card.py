"""The profiles' card: per profile (fast, accurate), held-out scores, probe pass rates and speed on this CPU.

    finpulse cards --profiles --data ../shared/data

Why one card for both: a user picks a profile, not an artifact, and the choice is a trade of
reading against compute; the two belong side by side, measured the same way in one run:

- held-out scores through the engine the pipeline runs (the Enricher, fp32): post sentiment on
  the TFNS rows the sentiment artifacts held out in training (seed 13, 10%: the same split for
  both, `models.data.holdout_split`), per-company sentiment on the SEntFiN and FinEntity
  documents the span head held out (the target models were split by document the same way);
- probe pass rates by capability (models/evaluation/probes.py), post and per company;
- speed: the engine over the held-out TFNS texts (real posts), second pass timed after a warm-up
  pass, posts/s on the wall clock and core-ms per post from the process's CPU time, at the
  precision `auto` picks on this CPU. Company mentions come from NER alone here (the pipeline adds
  cashtags and gazetteer names, so its per-company pass runs on more texts).

Numbers are never typed by hand: `write_profile_card` computes and writes them.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any

from finpulse.models.artifacts.profiles import PROFILES
from finpulse.models.data import holdout_split, read_classification_csv
from finpulse.models.evaluation.metrics import classification_report

CARD = Path(__file__).resolve().parents[1] / "cards" / "profiles.md"
SENTIMENT_FILE = "tfns_sentiment_train.csv"
ENTITY_FILES = ("sentfin_entity_train.jsonl", "finentity_train.jsonl")


def profile_report(profile: str, data_dir: Path, speed_texts: int = 400) -> dict[str, Any]:
    """One profile's held-out scores, probe pass rates and speed (see the module docstring)."""
    import torch

    from finpulse.models.artifacts.artifact import read_config
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.models.evaluation.evaluate import evaluate_entity_sentiment
    from finpulse.models.evaluation.probes import pass_rates, read_probes, run_probes
    from finpulse.models.spans import read_entity_jsonl
    from finpulse.models.tasks import get_task
    from finpulse.pipeline.runtime.settings import InferenceSettings

    registry = load_registry(PROFILES[profile])
    out: dict[str, Any] = {"profile": profile, "model_version": registry.model_version}
    fp32 = Enricher(registry, InferenceSettings(device="cpu", precision="fp32"))
    out["target_pass"] = fp32.target_policy if fp32.target else "none"

    sentiment = registry.sentiment
    rows = read_classification_csv(data_dir / SENTIMENT_FILE, get_task("sentiment"))
    _, held = holdout_split(rows, read_config(sentiment.artifact_path).training)
    texts = [rows[i].text for i in held]
    preds = fp32.predict(texts)
    report = classification_report([rows[i].label for i in held],
                                   [sentiment.labels.index(p.sentiment) for p in preds], sentiment.labels)
    out["heldout"] = {"sentiment/tfns_heldout": {k: report[k] for k in ("n", "accuracy", "macro_f1") if k in report}}

    assert registry.entity_sentiment is not None
    span_training = read_config(registry.entity_sentiment.artifact_path).training.get("entity_sentiment", {})
    for name in ENTITY_FILES:
        docs = read_entity_jsonl(data_dir / name)
        _, held_docs = holdout_split(docs, span_training)
        r = evaluate_entity_sentiment(fp32, [docs[i] for i in held_docs])
        out["heldout"][f"per_company/{Path(name).stem}_heldout"] = {
            "documents": r["documents"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}

    probes = read_probes()
    verdicts, _ = run_probes(fp32, probes)
    out["probes"] = pass_rates(probes, verdicts)
    del fp32

    engine = Enricher(registry, InferenceSettings(device="cpu"))
    sample = (texts * (speed_texts // max(1, len(texts)) + 1))[:speed_texts]
    engine.predict(sample)  # warm-up: oneDNN compiles each batch shape on first sight
    wall, cpu = time.perf_counter(), time.process_time()
    engine.predict(sample)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out["speed"] = {"texts": len(sample), "precision": engine.precision,
                    "threads": torch.get_num_threads(),
                    "posts_per_s": round(len(sample) / wall, 1), "core_ms_per_post": round(1000 * cpu / len(sample), 2)}
    return out


def render(reports: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """The card as Markdown: one column per profile."""
    names = [r["profile"] for r in reports]

    def row(label: str, cells: list[str]) -> str:
        return "| " + " | ".join([label, *cells]) + " |"

    def rate(c: dict[str, Any] | None) -> str:
        return f"{c['rate']:.0%} ({c['passed']}/{c['n']})" if c and c.get("n") else "-"

    lines = [
        "# Model profiles: fast and accurate side by side",
        "",
        "Written by `finpulse cards --profiles` (models/evaluation/profile_card.py); every number is computed, none "
        "typed. `--profile auto` picks accurate on a GPU and fast on a CPU.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"CPU features {', '.join(machine['features']) or 'none'}; {machine['date']}.",
        "",
        row("", names),
        row("---", ["---"] * len(names)),
        row("model version", [f"`{r['model_version']}`" for r in reports]),
        row("per-company target pass", [r["target_pass"] for r in reports]),
    ]
    for key in reports[0]["heldout"]:
        cells = [r["heldout"][key] for r in reports]
        size = f"{cells[0]['n']} texts" if "n" in cells[0] else f"{cells[0]['documents']} documents"
        lines.append(row(f"{key} ({size}) accuracy / macro-F1",
                         [f"{c['accuracy']:.3f} / {c['macro_f1']:.3f}" for c in cells]))
    lines.append(row("probes, post (all)", [rate(r["probes"]["all"]["post"]) for r in reports]))
    lines.append(row("probes, per company (all)", [rate(r["probes"]["all"]["companies"]) for r in reports]))
    lines.append(row("engine posts/s (wall)", [f"{r['speed']['posts_per_s']:.1f}" for r in reports]))
    lines.append(row("engine core-ms per post", [f"{r['speed']['core_ms_per_post']:.1f}" for r in reports]))
    lines.append(row("precision (auto on this CPU)", [r["speed"]["precision"] for r in reports]))
    lines += ["", "## Probe pass rates by capability (post / per company)", "",
              row("capability", names), row("---", ["---"] * len(names))]
    caps = sorted({c for r in reports for c in r["probes"] if c != "all"})
    for cap in caps:
        lines.append(row(cap, [f"{rate(r['probes'].get(cap, {}).get('post'))} / "
                               f"{rate(r['probes'].get(cap, {}).get('companies'))}" for r in reports]))
    lines += [
        "",
        "Held-out splits: TFNS, the 10% (seed 13) both sentiment artifacts held out in training; SEntFiN and "
        "FinEntity, the 10% of documents (seed 13) the span head and the target models held out. None of them "
        "was trained on or used to pick a checkpoint. Speed: the engine alone on the held-out TFNS texts "
        f"({reports[0]['speed']['texts']}, second pass timed), company mentions from NER only.",
        "",
    ]
    return "\n".join(lines)


def write_profile_card(data_dir: Path, out: Path = CARD, speed_texts: int = 400,
                       profiles: tuple[str, ...] = tuple(PROFILES)) -> list[dict[str, Any]]:
    """Measure every profile and write the card (Markdown) and its JSON beside it."""
    reports = [profile_report(p, data_dir, speed_texts) for p in profiles]
    from finpulse.models.engine.inference import cpu_features

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "features": cpu_features(), "date": date.today().isoformat()}
    try:
        model_name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("model name"))
        machine["cpu"] = model_name
    except (OSError, StopIteration):
        pass
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(reports, machine))
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "profiles": reports}, indent=1) + "\n")
    return reports

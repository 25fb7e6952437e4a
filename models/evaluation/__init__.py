"""Model evaluation: held-out scoring, metrics, model cards, behavioural probes.

- `evaluate`: held-out scoring of a network on labelled data (training and `finpulse eval`).
- `metrics`: classification report and strict IOB2 entity precision/recall/F1.
- `cards`: model cards written from the artifact itself and a fresh evaluation.
- `profile_card`: the profiles' card: fast and accurate side by side (held-out, probes, speed on this CPU).
- `probes`: behavioural probes of financial language (CheckList-style), pass rates by capability and profile.

Never imports `models.training`.
May import: `models.engine`, `models.artifacts`, `models.core`, `pipeline.runtime`, `schemas`.
"""

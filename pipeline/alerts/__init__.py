"""Alerts: when opinion on a company turns sharply negative, and who hears about it.

- `detector.py`: the negative-spike rule, a pure function over bucketed counts.
- `evaluate.py`: the rule run over the lake's per-company series, and the `alerts` store.
- `delivery.py`: every destination (webhook, Kafka topic, apprise URL) behind one interface,
  sent through one outbox (`lake/outbox.py`) with one retry helper.
- `notify.py`: routed notices (alert, escalation, resolved) planned into the notice log.
- `routes.py`: the routing file (which alerts go to which desk's channel), validated.
- `simulate.py`: the labelled Poisson simulation the detector's defaults were tuned on.

May import: `pipeline.lake`, `pipeline.runtime`, `schemas`.
"""

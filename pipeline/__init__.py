"""finpulse.pipeline: the streaming and batch pipeline, one sub-package per concern.

| package | what lives there | may import |
| --- | --- | --- |
| `sources/` | where records come from: the Kafka splittable DoFn, Beam's Java KafkaIO, archive files, restrictions | `messages`, `lake`, `enrich.parse` |
| `enrich/` | raw bytes -> validated rows: parsing, the model handler, row building, company linking, cashtags | `messages`, `models`, `schemas` |
| `lake/` | where rows go and how they are read: the commit protocol, storage, storage faults, query, SQL guard | `schemas` |
| `alerts/` | the negative-spike detector, its evaluation over the lake, the alert store and delivery, the simulation | `lake`, `schemas` |
| `market/` | prices beside sentiment: the `prices` table's loader, trading sessions, the information coefficient and the event study of alerts (`finpulse signal`) | `lake`, `enrich.companies`, `schemas` |
| `runtime/` | how Beam runs here: settings, the runner, guarded Beam patches, native-memory settings | nothing of ours but `errors` |
| `jobs/` | the two pipelines (stream, backfill) and the transforms they share | every package above |
| `cli/` | every `finpulse` command; the only place that turns errors into exit codes | everything |
| `devtools/` | bench, stock-Beam baseline, chaos harness, generator, demo; never imported at run time | everything |

`messages.py` holds the envelope types that travel between sources, parsing and the lake.
"""

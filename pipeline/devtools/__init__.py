"""Developer tooling: benchmarks, the stock-Beam baseline, the chaos harness, the synthetic feed,
the producer and the demo. Nothing in the runtime packages imports from here (a test checks it), so a
deployment can leave it out.

- `bench.py`: `finpulse bench`, ours beside stock Beam in one run; `bench_int8.py`, `bench_precision.py`,
  `bench_stories.py`, `lakebench.py`, `service_bench.py`, `bench_scale.py` (processes and Dask workers): its
  sections.
- `stock_beam.py`: Beam's stock Hugging Face handler, the baseline.
- `chaos.py`: kill, outage, load and soak runs.
- `generator.py`, `copies.py`, `realtext.py`: synthetic and real feeds; `produce.py`: the producer.
- `demo.py`: `finpulse demo`.
- `gazetteer.py`: rebuilds the company gazetteer; `linking_eval.py`: scores company linking.
- `signal_choice.py`: `finpulse compare-detectors`, alert settings judged by the prices after the alerts,
  and the synthetic universe with a planted effect to rehearse it on.

May import: everything.
"""

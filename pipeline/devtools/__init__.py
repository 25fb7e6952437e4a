"""Developer tooling: benchmarks, the stock-Beam baseline, the chaos harness, the synthetic feed,
the producer and the demo.

Nothing in the runtime packages imports from here (a test checks it), so a deployment can leave it
out. May import everything.
"""

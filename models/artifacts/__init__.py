"""What a model is on disk and how it is loaded, with no network.

- `artifact`: the artifact folder (config, LoRA adapter, heads) on top of a base encoder.
- `bases`: base encoders shipped inside PyPI packages, resolved to a local folder.
- `registry`: which artifact serves each task, with labels, window and version.
- `profiles`: the fast and accurate profiles, and which registry a command loads (no torch at import).
- `preflight`: the start-up check that fails a broken registry before any input is read.
- `lora`: low-rank updates on linear layers, merged away for inference.
- `shrink`: lowering a committed adapter's rank by truncated SVD.

May import: `models.core`, `pipeline.runtime`, `schemas`.
"""

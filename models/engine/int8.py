"""The int8 CPU path: each encoder as a statically quantised ONNX Runtime model, heads left in torch.

Where the CPU has no native bf16 (AVX2-only servers) the engine otherwise runs fp32. This is the one
int8 path. Dynamic int8 (torch's `quantize_dynamic`) was faster still but took each activation scale
over the whole padded batch, so a post's labels depended on its batch-mates; it was removed.
In this build no scale depends on another post,
so a post gets the same labels alone or in any batch (tests/models/test_int8.py holds it to that).

The Enricher uses it with `precision="int8"` (asked for; `auto` does not pick it, see
inference.pick_precision):

    loaded = load_artifact(path)
    loaded.model.encoder = int8_encoder(loaded)   # same interface; the heads stay torch fp32

The quantised encoder is built once per machine, per encoder weights and per recipe, into
`cache_root()/int8/` (9-17 s per artifact on 2 cores, logged; the folder appears atomically, so
concurrent workers never read half a model). It is not committed: at 56 MiB (the fp32 word
embeddings included) it is far over the repository's 5 MiB file budget, and cheap to rebuild.

The steps (pipeline/devtools/bench_int8.py measures the result; docs/SCALING.md has the figures):

1. export the merged fp32 encoder (LoRA folded in) with eager attention and dynamic batch and
   sequence axes (the TorchScript exporter: the graph ORT's BERT fusions were tuned on here);
2. fuse with ORT's BERT fusions (LayerNorm, GELU, attention in fp32), keeping Q, K and V as three
   MatMuls (MultiHeadAttention): the fused Attention op packs them into one weight that the
   quantiser cannot reach;
3. scale per token (`scale_per_token`): each weight MatMul's input is divided by its own per-token
   max |x| and the product multiplied back, exactly in fp32. MiniLM's [CLS] token carries FFN
   inputs of 20-30 where other tokens stay under ~8, so one range per tensor leaves ordinary
   tokens few int8 levels: without this step about twice as many held-out labels differ from
   fp32 (sentiment 2.1% against 1.15%), for ~11% more posts/s. A token's scale depends on that
   token alone, so it replays the same in any batch;
4. quantise (ORT's QDQ format, fused at load into MatMulIntegerToFloat) the six weight MatMuls of
   each layer: weights int8 symmetric per output channel, activations uint8 on fixed ranges (the
   min and max over the calibration text), MatMul outputs left in fp32.

Calibration text is built in (`calibration_texts`): the runtime may neither read ../shared/data
nor import the dev tools' generator. After step 3 the ranges barely depend on the text (the inputs
lie in [-1, 1] by construction); bench_int8 compares it with generator posts and training text.

Weights are 7-bit (`Recipe.reduce_range`): on AVX2 without VNNI, ORT's u8 x s8 kernel adds pairs of
products in 16 bits with saturation (vpmaddubsw); 255 * 63 * 2 stays in range, so AVX2, AVX-512 and
VNNI kernels compute the same integers, and quality and stability measured on one CPU hold on the
others (speed does not).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import tempfile
import time
import types
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finpulse.models.artifacts.artifact import LoadedModel, ModelLoadError
from finpulse.models.artifacts.bases import cache_root, publish_folder

log = logging.getLogger(__name__)

RECIPE_VERSION = 1  # part of the cache key: bump it when a build step changes in a way the Recipe does not show
INT8_FILE = "encoder-int8.onnx"
INFO_FILE = "build.json"
INPUTS = ("input_ids", "attention_mask")
SUPPORTED_MODEL_TYPES = ("bert",)  # the export (segment ids) and ORT's fusions assume a BERT graph
INSTALL = "pip install onnxruntime==1.32.0 onnx==1.23.2 (Python 3.11 or newer)"


class Int8Unavailable(ModelLoadError):
    """The int8 encoder cannot be built or run here; the message says why and what to do instead."""


@dataclass(frozen=True)
class Recipe:
    """How the int8 encoder is made. All of it is part of the cache key: a change rebuilds."""

    per_token: bool = True  # step 3; False: one fixed range per tensor (faster, twice as far from fp32)
    reduce_range: bool = True  # 7-bit weights: the same integers on AVX2, AVX-512 and VNNI kernels
    calibration_texts: int = 256
    calibration_seed: int = 20261
    opset: int = 17


def _runtime() -> Any:
    """The onnxruntime module, or Int8Unavailable saying how to install it."""
    try:
        import onnx  # noqa: F401  (the build steps need it too)
        import onnxruntime
    except ImportError:
        raise Int8Unavailable(f"the int8 CPU path needs onnxruntime and onnx: {INSTALL}") from None
    return onnxruntime


# -- 1. export ---------------------------------------------------------------------------------
class _LastHidden(torch.nn.Module):
    """The encoder with explicit position and segment ids: the defaults slice 512-long buffers, which
    ORT's symbolic shape inference (needed to quantise after the fusions) cannot follow."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0).expand_as(input_ids)
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                            token_type_ids=torch.zeros_like(input_ids)).last_hidden_state


def export_encoder(encoder: torch.nn.Module, out: Path, opset: int = 17) -> Path:
    """The fp32 encoder as ONNX: int64 inputs input_ids and attention_mask, output last_hidden_state,
    batch and sequence axes dynamic. Eager attention for the export (plain MatMul/Softmax: what ORT's
    attention fusion recognises); the encoder's own setting and mode are restored afterwards."""
    set_impl = getattr(encoder, "set_attn_implementation", None)
    before = getattr(encoder.config, "_attn_implementation", None)
    was_training = encoder.training
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 2088, 102, 0]])
    axes = {name: {0: "batch", 1: "seq"} for name in (*INPUTS, "last_hidden_state")}
    try:
        if set_impl is not None:
            set_impl("eager")
        encoder.eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's warnings about the mask code
            torch.onnx.export(_LastHidden(encoder), (ids, (ids != 0).long()), str(out), input_names=list(INPUTS),
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=opset, dynamo=False)
    finally:
        if set_impl is not None and before is not None:
            set_impl(before)
        encoder.train(was_training)
    return out


# -- 2. fuse -----------------------------------------------------------------------------------
def fuse_encoder(source: Path, out: Path, config: Any) -> Path:
    """ORT's BERT fusions with attention as MultiHeadAttention (Q, K, V stay separate, quantisable MatMuls)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_multi_head_attention = True
    options.enable_gelu_approximation = False  # exact GELU, as the torch encoder computes it
    fused = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size, optimization_options=options, opt_level=0, use_gpu=False)
    fused.save_model_to_file(str(out))
    return out


# -- 3. per-token scaling ----------------------------------------------------------------------
def _weight_matmuls(model: Any) -> dict[str, list[Any]]:
    """MatMul nodes whose right side is a 2-D weight, grouped by their input (Q, K and V share one)."""
    weights = {t.name for t in model.graph.initializer if len(t.dims) == 2}
    groups: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def scale_per_token(source: Path, out: Path) -> Path:
    """y = ((x / s_t) W) * s_t for every weight MatMul, s_t = max(max_c x_tc, -min_c x_tc) per token.

    Exact in fp32; the quantiser then sees inputs in [-1, 1] (module docstring, step 3). Built from two
    reductions over the last axis, a reciprocal per token and two Muls (no |x| tensor, no Div)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    nodes = list(model.graph.node)
    model.graph.initializer.append(numpy_helper.from_array(np.array(1e-6, dtype=np.float32), "token_scale_eps"))
    for k, (name, consumers) in enumerate(_weight_matmuls(model).items()):
        s, x = f"token_scale_{k}", f"{name}_per_token"
        at = nodes.index(consumers[0])  # after the producer of `name`, before its first weight MatMul
        nodes[at:at] = [
            helper.make_node("ReduceMax", [name], [f"{s}_hi"], name=f"{s}_hi", axes=[-1], keepdims=1),
            helper.make_node("ReduceMin", [name], [f"{s}_lo"], name=f"{s}_lo", axes=[-1], keepdims=1),
            helper.make_node("Neg", [f"{s}_lo"], [f"{s}_neg"], name=f"{s}_neg"),
            helper.make_node("Max", [f"{s}_hi", f"{s}_neg", "token_scale_eps"], [s], name=s),
            helper.make_node("Reciprocal", [s], [f"{s}_inv"], name=f"{s}_inv"),
            helper.make_node("Mul", [name, f"{s}_inv"], [x], name=f"{s}_normalise"),
        ]
        for node in consumers:
            y = node.output[0]
            node.input[0], node.output[0] = x, f"{y}_per_token"
            rescale = helper.make_node("Mul", [node.output[0], s], [y], name=f"{s}_{y}_rescale")
            nodes.insert(nodes.index(node) + 1, rescale)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(out))
    return out


# -- 4. calibrate and quantise -----------------------------------------------------------------
_SENTENCES = (
    "{name} shares jumped {pct}% after quarterly revenue beat analyst estimates.",
    "{name} cut its full-year outlook as demand weakened, and the stock fell {pct}% in premarket trading.",
    "The Federal Reserve held interest rates steady and signalled two cuts later this year.",
    "${ticker} looks oversold here, adding more on the dip",
    "Regulators in Brussels opened an antitrust probe into {name} over its app store fees.",
    "{name} declared a quarterly dividend of {cents} cents per share, payable on March 14.",
    "Oil prices rose {pct}% as OPEC+ agreed to extend output cuts into the second quarter.",
    "{name} named a new chief financial officer, effective immediately.",
    "Treasury yields climbed to 4.{cents}% as inflation data came in hotter than expected.",
    "Is anyone else worried about ${ticker} margins? Guidance was vague at best.",
    "{name} agreed to buy a smaller rival for ${pct}.{cents} billion in cash, its largest deal in a decade.",
    "Gold hit a record high while the dollar slipped against the yen and the euro.",
    "Analysts at Morgan Stanley upgraded {name} to overweight with a price target of ${cents}0.",
    "{name} will report results on Thursday; options imply a move of about {pct}% either way.",
)
_COMPANIES = (("Apple", "AAPL"), ("Microsoft", "MSFT"), ("Exxon Mobil", "XOM"), ("JPMorgan Chase", "JPM"),
              ("Tesla", "TSLA"), ("Pfizer", "PFE"), ("Walmart", "WMT"), ("Nvidia", "NVDA"), ("Boeing", "BA"),
              ("Coca-Cola", "KO"), ("Siemens", "SIE"), ("Toyota", "TM"))


def calibration_texts(n: int, seed: int) -> list[str]:
    """Finance posts and articles in our own words: half single sentences, half 2-8 sentences (up to
    ~150 tokens), so that short and long inputs both set the ranges."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = 1 if rng.random() < 0.5 else rng.randint(2, 8)
        name, ticker = rng.choice(_COMPANIES)
        out.append(" ".join(rng.choice(_SENTENCES).format(name=name, ticker=ticker, pct=rng.randint(1, 19),
                                                          cents=rng.randint(10, 99)) for _ in range(k)))
    return out


class _OneByOne:
    """ORT feeds, one unpadded text per run, so that padding never enters a range
    (the interface of ORT's CalibrationDataReader)."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], max_length: int) -> None:
        self._ids = iter(tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"])

    def get_next(self) -> dict[str, np.ndarray] | None:
        ids = next(self._ids, None)
        if ids is None:
            return None
        arr = np.asarray([ids], dtype=np.int64)
        return {"input_ids": arr, "attention_mask": np.ones_like(arr)}


def activation_ranges(model_path: Path, names: Sequence[str], tokenizer: Any, texts: Sequence[str],
                      max_length: int) -> dict[str, tuple[float, float]]:
    """(min, max) of each named tensor over `texts`, run through ORT in fp32 one text at a time (0 always inside)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every named tensor
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    lo = dict.fromkeys(names, 0.0)
    hi = dict.fromkeys(names, 0.0)
    reader = _OneByOne(tokenizer, texts, max_length)
    while (feeds := reader.get_next()) is not None:
        for name, value in zip(names, session.run(list(names), feeds), strict=True):
            lo[name] = min(lo[name], float(value.min()))
            hi[name] = max(hi[name], float(value.max()))
    return {name: (lo[name], hi[name]) for name in names}


def quantize_encoder(source: Path, out: Path, tokenizer: Any, texts: Sequence[str], recipe: Recipe,
                     max_length: int = 128) -> Path:
    """Static int8 QDQ quantisation of the weight MatMuls; the attention products stay fp32.

    The ranges are measured here (`activation_ranges`) and handed to ORT's quantiser as per-tensor
    overrides, so its own calibrator only runs a few texts (its MinMax gives the same ranges)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_OneByOne, CalibrationDataReader):
        pass

    prepped = source.with_name(source.stem + "-prep.onnx")  # beside the source: scratch, not the output
    # ORT's symbolic shape inference knows the fused contrib ops (plain ONNX shape inference does not)
    quant_pre_process(str(source), str(prepped), skip_symbolic_shape=False)
    graph = onnx.load(str(prepped)).graph
    weights = {t.name for t in graph.initializer}
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    attention = [n.name for n in matmuls if n.input[1] not in weights]  # activation x activation: left in fp32
    inputs = sorted({n.input[0] for n in matmuls if n.name not in attention})
    ranges = activation_ranges(prepped, inputs, tokenizer, texts, max_length)
    overrides = {name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in ranges.items()}
    quantize_static(
        str(prepped), str(out), Reader(tokenizer, texts[:4], max_length), quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"], per_channel=True, reduce_range=recipe.reduce_range,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=attention,
        extra_options={"TensorQuantOverrides": overrides, "OpTypesToExcludeOutputQuantization": ["MatMul"]},
        calibration_providers=["CPUExecutionProvider"],
    )
    return out


# -- the build and its cache -------------------------------------------------------------------
def encoder_digest(encoder: torch.nn.Module) -> str:
    """Hash of the merged encoder weights: a retrained adapter or another base gets its own build."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def build_key(encoder: torch.nn.Module, recipe: Recipe) -> str:
    """The cache key: recipe, build code version, the versions of the tools that build it, and the weights."""
    import onnx

    ort = _runtime()
    parts = {"recipe": asdict(recipe), "v": RECIPE_VERSION, "ort": ort.__version__, "onnx": onnx.__version__,
             "torch": torch.__version__.split("+")[0], "weights": encoder_digest(encoder)}
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=8).hexdigest()


def build_int8(loaded: LoadedModel, recipe: Recipe = Recipe(), cache: Path | None = None,
               texts: Sequence[str] | None = None) -> Path:
    """The folder holding `encoder-int8.onnx` and `build.json` for `loaded`'s encoder, built once if absent.

    `texts`: calibration text instead of the built-in one; it is not part of the cache key, so give
    it only to measure, with a `cache` of its own (bench_int8 does)."""
    _runtime()
    model_type = getattr(loaded.model.encoder.config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise Int8Unavailable(f"the int8 CPU path is built and measured for BERT-family encoders (MiniLM); "
                              f"{loaded.path} has a {model_type!r} encoder: use --precision fp32 or bf16 for it")
    dest = (cache or cache_root() / "int8") / f"{Path(loaded.path).name}-{build_key(loaded.model.encoder, recipe)}"
    if (dest / ".complete").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    scratch = work / "scratch"
    scratch.mkdir()
    try:
        log.info("int8 encoder: building it for %s, once, into %s", loaded.path, dest)
        began = time.perf_counter()
        source = export_encoder(loaded.model.encoder, scratch / "fp32.onnx", recipe.opset)
        exported = time.perf_counter()
        source = fuse_encoder(source, scratch / "fused.onnx", loaded.model.encoder.config)
        if recipe.per_token:
            source = scale_per_token(source, scratch / "per-token.onnx")
        texts = calibration_texts(recipe.calibration_texts, recipe.calibration_seed) if texts is None else texts
        quantize_encoder(source, work / INT8_FILE, loaded.tokenizer, texts, recipe, loaded.config.max_length)
        done = time.perf_counter()
        shutil.rmtree(scratch)
        size = (work / INT8_FILE).stat().st_size
        info = {"recipe": asdict(recipe), "recipe_version": RECIPE_VERSION, "artifact": str(loaded.path),
                "calibration_texts": len(texts), "export_s": round(exported - began, 2),
                "quantise_s": round(done - exported, 2), "build_s": round(done - began, 2), "bytes": size}
        (work / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        publish_folder(work, dest)
        log.info("int8 encoder: ready in %.1f s (%.1f MiB)", info["build_s"], size / 2**20)
        return dest
    except Exception as exc:
        raise Int8Unavailable(f"could not build the int8 encoder for {loaded.path} ({type(exc).__name__}: {exc}); "
                              f"run with --precision fp32 meanwhile") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already if it became `dest`


# -- the stand-in for the torch encoder --------------------------------------------------------
class OrtEncoder(torch.nn.Module):
    """Stands in for a Hugging Face encoder: `encoder(input_ids=..., attention_mask=...).last_hidden_state`
    is a float32 CPU tensor computed by ONNX Runtime. It has no parameters: the heads stay in torch.

    `threads`: ORT's intra-op threads (default: torch's, which the Enricher sets). Idle ORT workers do
    not spin between calls: the engine decodes and runs the heads between them, and on a small
    machine a spinning worker takes a core from that work."""

    def __init__(self, onnx_path: str | Path, config: Any = None, threads: int | None = None) -> None:
        super().__init__()
        ort = _runtime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(onnx_path)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.config = config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> types.SimpleNamespace:
        feeds = {"input_ids": input_ids.detach().cpu().numpy().astype(np.int64, copy=False),
                 "attention_mask": attention_mask.detach().cpu().numpy().astype(np.int64, copy=False)}
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        return types.SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))


def int8_encoder(loaded: LoadedModel, threads: int | None = None, recipe: Recipe = Recipe(),
                 cache: Path | None = None) -> OrtEncoder:
    """An OrtEncoder running the int8 build of `loaded`'s encoder (built into the cache on first use).
    Every failure is an Int8Unavailable whose message says what to do."""
    folder = build_int8(loaded, recipe, cache)
    try:
        return OrtEncoder(folder / INT8_FILE, loaded.model.encoder.config, threads)
    except Exception as exc:  # onnxruntime's own error types
        raise Int8Unavailable(f"ONNX Runtime could not load {folder / INT8_FILE} ({exc}); delete that folder "
                              f"to rebuild it, or run with --precision fp32") from exc

"""CPU inference through ONNX Runtime: the sentence-transformers model exported once to ONNX
(`onnx`, float32) or exported and quantised to int8 (`onnx-int8`), cached on disk.

Why our own export rather than sentence-transformers' `backend="onnx"`: that route needs
optimum-onnx, which pins transformers below 4.58 (this lock has 5.x); torch's own exporter and
onnxruntime's quantiser need only onnxruntime and onnx.

The graph is the whole sentence-transformers pipeline (transformer, pooling, any dense layers,
normalisation): token ids in, the sentence embedding out, so pooling is the model's own, whatever
it is. Tokenisation stays in Python (the model's fast tokenizer), as for torch.

Cache: EMBEDDING_CACHE_DIR/<model>-<variant>-<fingerprint>/{model.onnx, manifest.json}. The
fingerprint hashes the recipe and the model's weights and modules, so a changed model or recipe
gets a new entry and the hub is never asked. One process builds under an flock; it builds in a
temporary directory beside the entry and renames it into place, so a reader sees a whole entry or
none, and a crash leaves only a temporary directory that the next builder removes. An entry whose
manifest or file hash does not check out is moved aside and rebuilt. An operator may provide the
directory read-only with the entry already built (run the same image once against it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnxruntime
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

# Bump when the export or quantisation changes: every cache entry is then built anew.
RECIPE = 1
VARIANTS = ("onnx", "onnx-int8")
MODEL_FILE, MANIFEST = "model.onnx", "manifest.json"
# A fresh export must reproduce torch's vectors (float32: 1e-6 apart in practice); int8 is
# ~0.97 on the probe texts, so only a quantiser that broke falls below its floor.
_MIN_COSINE = {"onnx": 0.9999, "onnx-int8": 0.9}
_PROBE = [
    "Login page returns 500 after the OAuth redirect",
    "ok",
    "The nightly export stalls when a project has more than ten thousand issues " * 4,
]


class OnnxBackendError(RuntimeError):
    """The ONNX model could not be built, read or checked (the message names the setting)."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plane-workers" / "embeddings"


def fingerprint(model: SentenceTransformer, variant: str) -> str:
    """What the built file depends on: the recipe, the modules and every weight."""
    digest = hashlib.sha256(f"recipe={RECIPE} variant={variant} seq={model.max_seq_length}".encode())
    for module in model:
        digest.update(type(module).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def entry_name(model_name: str, variant: str, digest: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", model_name.rsplit("/", 1)[-1].lower()).strip("-")[:40] or "model"
    return f"{slug}-{variant}-{digest[:16]}"


def features(model: SentenceTransformer, texts: Sequence[str]) -> dict[str, Any]:
    """The tensors the model's first module reads, as sentence-transformers' encode makes them
    (padded to the batch's longest, truncated at max_seq_length)."""
    # sentence-transformers 6 renamed tokenize; 5.x (the GPU lock's) has only the old name.
    prepare = getattr(model, "preprocess", None) or model.tokenize
    return prepare(list(texts))


class OnnxEncoder:
    """One ONNX Runtime session: a padded batch of token ids to sentence embeddings."""

    def __init__(self, path: Path, variant: str, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's default, one per physical core
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path, self.variant = path, variant
        self.session: onnxruntime.InferenceSession = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, batch: dict[str, Any]) -> np.ndarray:
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.inputs}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)


def load(
    model: SentenceTransformer, name: str, variant: str, cache_dir: str = "", threads: int = 0
) -> OnnxEncoder:
    """The cached ONNX model for `model`, built first when there is no valid one."""
    if variant not in VARIANTS:
        raise ValueError(f"EMBEDDING_BACKEND={variant!r}: auto, torch, {' or '.join(VARIANTS)}")
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    digest = fingerprint(model, variant)
    entry = root / entry_name(name, variant, digest)
    if not _valid(entry, digest):
        _build_locked(model, variant, root, entry, digest)
    return OnnxEncoder(entry / MODEL_FILE, variant, threads)


def _valid(entry: Path, digest: str) -> bool:
    """A complete entry for this fingerprint whose file still hashes to what was written."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        if manifest.get("fingerprint") != digest:
            return False
        return _sha256(entry / MODEL_FILE) == manifest.get("sha256")
    except (OSError, ValueError, AttributeError):
        return False


def _build_locked(model: SentenceTransformer, variant: str, root: Path, entry: Path, digest: str) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f".{entry.name}.lock", "a+")  # noqa: SIM115 (held until the build ends)
    except OSError as exc:
        raise OnnxBackendError(
            f"EMBEDDING_CACHE_DIR={str(root)!r}: no valid {variant} model for this model there, and "
            f"it cannot be written to build one ({exc.strerror or exc})"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the entry built
        if _valid(entry, digest):
            return
        for stale in root.glob(f".building-{entry.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # a builder died: only builders hold the lock
        if entry.exists():
            log.warning("embedding ONNX cache entry is invalid: rebuilding", extra={"entry": str(entry)})
            aside = Path(tempfile.mkdtemp(prefix=f".invalid-{entry.name}-", dir=root))
            entry.rename(aside / "entry")
            shutil.rmtree(aside, ignore_errors=True)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".building-{entry.name}-", dir=root))
        try:
            _build(model, variant, work, digest)
            work.chmod(0o755)  # mkdtemp's 0700 would hide a prebuilt entry from the pods' user
            work.rename(entry)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        _fsync_dir(root)
        log.info(
            "embedding ONNX model built",
            extra={"entry": str(entry), "seconds": round(time.monotonic() - started, 1)},
        )


def _build(model: SentenceTransformer, variant: str, work: Path, digest: str) -> None:
    import onnxruntime
    import torch

    exported = work / ("fp32.onnx" if variant != "onnx" else MODEL_FILE)
    _export(model, exported)
    if variant == "onnx-int8":
        _quantise(exported, work / MODEL_FILE)
        exported.unlink()
    cosine = _check(model, OnnxEncoder(work / MODEL_FILE, variant))
    if cosine < _MIN_COSINE[variant]:
        raise OnnxBackendError(
            f"EMBEDDING_BACKEND={variant}: the built model's vectors are {cosine:.4f} (cosine) from "
            f"torch's, below {_MIN_COSINE[variant]}; use EMBEDDING_BACKEND=torch for this model"
        )
    with open(work / MODEL_FILE, "rb") as f:
        os.fsync(f.fileno())
    manifest = {
        "fingerprint": digest,
        "sha256": _sha256(work / MODEL_FILE),
        "variant": variant,
        "recipe": RECIPE,
        "min_cosine_to_torch": round(cosine, 6),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    with open(work / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def _graph(model: SentenceTransformer, names: list[str]) -> Any:
    """The model's modules chained as sentence-transformers' forward chains them."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            batch: dict[str, Any] = dict(zip(names, tensors, strict=True))
            for step in self.st:
                batch = step(batch)
            return batch["sentence_embedding"]

    return Graph().eval()


def _export(model: SentenceTransformer, path: Path) -> None:
    """torch's TorchScript exporter (dynamo=False): it traces the transformers model as is,
    where the dynamo exporter needs onnxscript; batch and sequence axes left dynamic."""
    import torch

    sample = features(model, _PROBE[:2])
    names = [k for k, v in sample.items() if isinstance(v, torch.Tensor)]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"sentence_embedding": {0: "batch"}}
    with torch.inference_mode(), warnings_quiet():
        torch.onnx.export(
            _graph(model, names),
            tuple(sample[n] for n in names),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
        )


def _quantise(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings_quiet():
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
        )


def _check(model: SentenceTransformer, encoder: OnnxEncoder) -> float:
    """The smallest cosine between the built model's vectors and torch's on the probe texts."""
    import torch

    with torch.inference_mode():
        reference = model.encode(_PROBE, convert_to_numpy=True, normalize_embeddings=True)
    ours = encoder.run(features(model, _PROBE))
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    return float(np.min(np.sum(ours * reference, axis=1)))


class _QuantiserAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname or record.levelno >= logging.ERROR


@contextlib.contextmanager
def warnings_quiet() -> Iterator[None]:
    """The tracer's and quantiser's advice (TracerWarning, "consider pre-processing", both
    written for people writing exporters) kept out of an operator's log; the quantiser logs
    through the root logger, so only its records are dropped there."""
    import warnings

    root, advice = logging.getLogger(), _QuantiserAdvice()
    root.addFilter(advice)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            root.removeFilter(advice)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

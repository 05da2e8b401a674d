"""Documents (issues, pages, documentation files) into token windows for the embedding model.

Windows are counted in the model's own tokens (its fast tokenizer), so none is truncated by the
model, and cut with the tokenizer's character offsets, so a chunk's text is an exact slice of the
document. Cuts fall between words where possible: a word split across windows would embed as two
fragments (and re-tokenise differently), which costs recall at every boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

ISSUE = "issue"
PAGE = "page"
DOC = "doc"


@dataclass(frozen=True)
class Document:
    """One entity's text as it is embedded, with what every chunk of it carries."""

    entity_type: str
    entity_id: str
    workspace_id: str | None  # None: a documentation file, shared by every workspace
    project_id: str | None
    version: int  # the source's external version (index.external_version)
    text: str

    def content_hash(self, profile: str) -> str:
        """What decides whether the vectors are still current: the text, where it lives, and the
        chunking profile. The model is recorded beside it, not in it, so that a status report can
        tell "model changed" from "text changed"."""
        digest = hashlib.sha256()
        for part in (profile, self.workspace_id or "", self.project_id or "", self.text):
            digest.update(part.encode())
            digest.update(b"\x00")
        return digest.hexdigest()


def issue_document(
    *,
    issue_id: str,
    workspace_id: str,
    project_id: str,
    version: int,
    name: str,
    description_stripped: str | None,
    comments: Iterable[str] = (),
) -> Document:
    """An issue as Plane AI reads it: its name, then its plain-text description, then comments."""
    return Document(
        ISSUE, issue_id, workspace_id, project_id, version, _join(name, description_stripped, *comments)
    )


def page_document(
    *,
    page_id: str,
    workspace_id: str,
    project_id: str | None,
    version: int,
    name: str,
    description_stripped: str | None,
) -> Document:
    """A page (Plane's `pages.name` and `description_stripped`); project-less pages are the
    workspace's own."""
    return Document(PAGE, page_id, workspace_id, project_id, version, _join(name, description_stripped))


def doc_file_document(*, path: str, version: int, text: str, workspace_id: str | None = None) -> Document:
    """A documentation file, keyed by its repository path; global unless given a workspace."""
    return Document(DOC, path, workspace_id, None, version, text)


def _join(*parts: str | None) -> str:
    return "\n\n".join(part.strip() for part in parts if part and part.strip())


@dataclass(frozen=True)
class ChunkFields:
    """Which chunk of which entity version, and its text: what a chunk, a search candidate and a
    hit (shared.embeddings.index) all start with."""

    entity_type: str
    entity_id: str
    workspace_id: str | None
    project_id: str | None
    version: int
    chunk_index: int
    text: str


@dataclass(frozen=True)
class Chunk(ChunkFields):
    """One window of a document: the text that is embedded and what the index stores with it."""

    token_count: int  # the model's tokens, special tokens not counted
    start: int  # character offsets of `text` in the document's text
    end: int


class Chunker:
    """Splits documents into windows of at most `window` tokens, each repeating about `overlap`
    tokens of the one before, and at most `max_chunks` per document."""

    def __init__(self, tokenizer: Tokenizer, *, window: int, overlap: int, max_chunks: int = 1000) -> None:
        if window < 1 or not 0 <= overlap < window or max_chunks < 1:
            raise ValueError(f"need window >= 1, 0 <= overlap < window, max_chunks >= 1: {window}/{overlap}")
        from tokenizers import Tokenizer

        # A copy: the model's tokenizer.json may carry truncation and padding (MiniLM's: 128 fixed),
        # which would cut long documents silently and pad short ones with [PAD] tokens.
        self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.window, self.overlap, self.max_chunks = window, overlap, max_chunks

    @classmethod
    def from_model_dir(
        cls, model_dir: str | Path, *, window: int, overlap: int, max_chunks: int = 1000
    ) -> Chunker:
        """Only the model's tokenizer.json: chunking needs no torch."""
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the model has no fast tokenizer (tokenizer.json)")
        return cls(Tokenizer.from_file(str(path)), window=window, overlap=overlap, max_chunks=max_chunks)

    @property
    def profile(self) -> str:
        """The parameters that change the chunks: part of every document's content hash."""
        return f"w{self.window}-o{self.overlap}-m{self.max_chunks}"

    def split(self, document: Document) -> list[Chunk]:
        return self.split_many([document])[0]

    def split_many(self, documents: Sequence[Document]) -> list[list[Chunk]]:
        # One encode_batch: the Rust tokenizer spreads a batch over every core.
        encodings = self._tokenizer.encode_batch([d.text for d in documents], add_special_tokens=False)
        return [self._windows(doc, enc) for doc, enc in zip(documents, encodings, strict=True)]

    def _windows(self, doc: Document, enc: Encoding) -> list[Chunk]:
        offsets, words = enc.offsets, enc.word_ids
        n = len(offsets)
        # A token starts a word unless it continues the previous token's word ("##ing").
        starts_word = [i == 0 or words[i] is None or words[i] != words[i - 1] for i in range(n)]
        chunks: list[Chunk] = []
        start = 0
        while start < n and len(chunks) < self.max_chunks:
            end = min(start + self.window, n)
            if end < n:
                # Back to the last word start, but not below half a window: a cut inside one huge
                # word (a pasted hash, a URL) beats a string of tiny chunks before it.
                cut, floor = end, start + max(1, self.window // 2)
                while cut > floor and not starts_word[cut]:
                    cut -= 1
                if starts_word[cut]:
                    end = cut
            char_start, char_end = offsets[start][0], offsets[end - 1][1]
            chunks.append(
                Chunk(
                    doc.entity_type,
                    doc.entity_id,
                    doc.workspace_id,
                    doc.project_id,
                    doc.version,
                    len(chunks),
                    doc.text[char_start:char_end],
                    end - start,
                    char_start,
                    char_end,
                )
            )
            if end >= n:
                break
            # The next window repeats `overlap` tokens, from the first word start among them (less
            # overlap rather than half a word), and always moves forward.
            nxt = end - self.overlap
            while nxt < end and not starts_word[nxt]:
                nxt += 1
            start = max(nxt, start + 1)
        return chunks

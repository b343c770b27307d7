"""The context packer (core/context.py) on many random inputs and on hand-made ones, with the
embedding model's real WordPiece tokenizer and a byte-level BPE tokenizer trained here (whose
counts do not add up across lines, so the packer's whole-block check has work to do)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from somafractalmemory.core.context import (
    MAX_BUDGET_TOKENS,
    MIN_BUDGET_TOKENS,
    Candidate,
    Packed,
    Turn,
    check_budget,
    pack,
)
from somafractalmemory.core.tokens import TokenCounter, Tokenizers, create_tokenizers
from somafractalmemory.errors import EmbeddingModelError, InvalidInputError
from somafractalmemory.settings import DEFAULT_EMBEDDING_MODEL

BASE = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
WORDS = ["tea", "hike", "lake", "Zoë", "café", "東京", "🙂", "don't", "42", "re-run", "the"]
ODD = ["", " ", "\n", "\t\t", "a\u0301", "…", "##", "[CLS]", "x" * 40, "mid\nline"]


@pytest.fixture(scope="module")
def wordpiece() -> TokenCounter:
    return create_tokenizers(DEFAULT_EMBEDDING_MODEL, {}).default


def _bpe() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["[UNK]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [" ".join(WORDS) + "\n\n## Memories\n[2023-05-08 13:56] Caroline: …"] * 20
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


BPE_TOKENIZER = _bpe()
BPE = TokenCounter("test-bpe", BPE_TOKENIZER)

texts = st.lists(st.sampled_from(WORDS + ODD), max_size=40).map(" ".join)
turns = st.builds(
    Turn,
    key=st.text(min_size=1, max_size=8),
    text=texts,
    conversation_id=st.none() | st.sampled_from(["c1", "c2", "a long conversation id"]),
    created_at=st.none() | st.integers(0, 10_000).map(lambda m: BASE + timedelta(minutes=m)),
    speaker=st.none() | st.sampled_from(["Caroline", "Mel", "  ", "a b"]),
    role=st.none() | st.sampled_from(["user", "assistant", "tool", "bogus"]),
    seq=st.none() | st.integers(0, 50),
)
candidates = st.lists(
    st.builds(
        Candidate,
        kind=st.sampled_from(["memory", "message"]),
        turn=turns,
        score=st.floats(0, 1),
        signals=st.fixed_dictionaries({"vector": st.none() | st.integers(1, 100)}),
        neighbours=st.lists(turns, max_size=3),
    ),
    max_size=20,
)


def _exact(counter: TokenCounter, packed: Packed) -> int:
    if isinstance(packed.context, str):
        return counter.count(packed.context)
    return sum(counter.count(m["content"]) for m in packed.context)


def _bytes(packed: Packed) -> str:
    return json.dumps(asdict(packed), sort_keys=True, ensure_ascii=False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    found=candidates,
    budget=st.integers(MIN_BUDGET_TOKENS, 4000),
    fmt=st.sampled_from(["text", "messages"]),
    bpe=st.booleans(),
)
def test_never_over_budget_and_deterministic(
    wordpiece: TokenCounter, found: list[Candidate], budget: int, fmt: str, bpe: bool
) -> None:
    counter = BPE if bpe else wordpiece
    packed = pack(found, budget, counter, fmt)  # type: ignore[arg-type]
    assert packed.tokens == _exact(counter, packed)
    assert packed.tokens <= budget
    assert packed.budget_tokens == budget
    assert packed.tokenizer == counter.name
    assert _bytes(pack(list(reversed(found)), budget, counter, fmt)) == _bytes(packed)  # type: ignore[arg-type]
    usable = [c for c in found if c.turn.text.strip()]
    if usable:
        best = max(usable, key=lambda c: c.score)
        assert packed.sources, "the top hit was dropped"
        assert packed.sources[0].score == best.score
        if packed.sources[0].truncated:
            assert packed.truncated
    else:
        assert packed.sources == []


def _message(i: int, text: str | None = None, conversation: str = "c1") -> Turn:
    return Turn(
        key=f"D1:{i}",
        text=text or f"turn {i} about the lake",
        conversation_id=conversation,
        created_at=BASE + timedelta(minutes=i),
        speaker="Caroline" if i % 2 else "Mel",
        role="user" if i % 2 else "assistant",
        seq=i,
    )


def _hit(i: int, score: float, window: int = 1, conversation: str = "c1") -> Candidate:
    return Candidate(
        "message",
        _message(i, conversation=conversation),
        score,
        {"vector": 1},
        [_message(j, conversation=conversation) for j in range(i - window, i + window + 1)],
    )


def test_overlapping_windows_merge_in_time_order(wordpiece: TokenCounter) -> None:
    packed = pack([_hit(10, 0.9), _hit(5, 0.8), _hit(6, 0.7)], 1000, wordpiece)
    assert isinstance(packed.context, str)
    header, *body = packed.context.split("\n")
    assert header == "## Conversation c1"
    assert body[0] == "[2023-05-08 14:00] Mel: turn 4 about the lake"
    said = [line.split(": ", 1)[1] if ": " in line else line for line in body]
    turns = [f"turn {i} about the lake" for i in (4, 5, 6, 7)]
    assert said == [*turns, "…", *(f"turn {i} about the lake" for i in (9, 10, 11))]
    assert [s.key for s in packed.sources] == ["D1:10", "D1:5", "D1:6"]
    assert not packed.truncated


def test_groups_by_conversation_best_first(wordpiece: TokenCounter) -> None:
    memory = Candidate("memory", Turn("1,2,3", "the user likes green tea", speaker="user"), 0.5)
    found = [_hit(3, 0.4, 0, "c2"), memory, _hit(1, 0.9, 0, "c1")]
    packed = pack(found, 1000, wordpiece)
    assert isinstance(packed.context, str)
    headers = [line for line in packed.context.split("\n") if line.startswith("## ")]
    assert headers == ["## Conversation c1", "## Memories", "## Conversation c2"]
    assert "\n\n## Memories\nuser: the user likes green tea\n\n" in packed.context


def test_budget_cuts_later_hits_and_says_so(wordpiece: TokenCounter) -> None:
    found = [_hit(i * 10, 1.0 - i / 100, window=2) for i in range(20)]
    packed = pack(found, 100, wordpiece)
    assert packed.truncated
    assert 80 < packed.tokens <= 100
    assert packed.sources[0].key == "D1:0"
    assert not packed.sources[0].truncated


def test_top_hit_cut_not_dropped(wordpiece: TokenCounter) -> None:
    long = Candidate("memory", Turn("1,1", "word " * 400, speaker="Mel"), 0.9)
    small = Candidate("memory", Turn("1,2", "short one"), 0.1)
    packed = pack([small, long], 40, wordpiece)
    assert isinstance(packed.context, str)
    assert packed.truncated
    assert [(s.key, s.truncated) for s in packed.sources] == [("1,1", True)]
    assert packed.context.startswith("## Memories\nMel: word word")
    assert packed.context.endswith("…")
    assert 35 <= packed.tokens <= 40
    as_messages = pack([long], 40, wordpiece, "messages")
    assert as_messages.sources[0].truncated
    assert as_messages.tokens <= 40


def test_messages_format(wordpiece: TokenCounter) -> None:
    memory = Candidate("memory", Turn("1,2,3", "likes tea", created_at=BASE), 0.95)
    packed = pack([memory, _hit(2, 0.9)], 1000, wordpiece, "messages")
    assert packed.context == [
        {"role": "system", "content": "## Memories\n[2023-05-08 13:56] likes tea"},
        {"role": "user", "content": "[2023-05-08 13:57] Caroline: turn 1 about the lake"},
        {"role": "assistant", "content": "[2023-05-08 13:58] Mel: turn 2 about the lake"},
        {"role": "user", "content": "[2023-05-08 13:59] Caroline: turn 3 about the lake"},
    ]
    assert packed.tokens == sum(wordpiece.count(m["content"]) for m in packed.context)


def test_empty_candidates(wordpiece: TokenCounter) -> None:
    packed = pack([], 100, wordpiece)
    assert (packed.context, packed.tokens, packed.sources, packed.truncated) == ("", 0, [], False)


@pytest.mark.parametrize("budget", [MIN_BUDGET_TOKENS - 1, MAX_BUDGET_TOKENS + 1, 0, -5])
def test_budget_limits(budget: int, wordpiece: TokenCounter) -> None:
    with pytest.raises(InvalidInputError) as caught:
        pack([], budget, wordpiece)
    assert caught.value.field == "budget_tokens"
    check_budget(MIN_BUDGET_TOKENS)
    check_budget(MAX_BUDGET_TOKENS)


def test_tokenizer_names(tmp_path: Path, wordpiece: TokenCounter) -> None:
    BPE_TOKENIZER.save(str(tmp_path / "tokenizer.json"))
    tokenizers = create_tokenizers(DEFAULT_EMBEDDING_MODEL, {"bpe": tmp_path})
    assert tokenizers.names == [DEFAULT_EMBEDDING_MODEL, "bpe"]
    assert tokenizers.get().name == DEFAULT_EMBEDDING_MODEL
    assert tokenizers.get("bpe").count("tea lake") == BPE.count("tea lake")
    # [CLS]/[SEP] are not counted, truncation at the model's 128 tokens is off
    assert wordpiece.count("tea") == 1
    assert wordpiece.count("tea " * 300) == 300
    with pytest.raises(InvalidInputError) as caught:
        tokenizers.get("cl100k_base")
    assert caught.value.field == "tokenizer"
    assert DEFAULT_EMBEDDING_MODEL in str(caught.value)
    assert isinstance(Tokenizers(wordpiece).get(), TokenCounter)


def test_a_configured_tokenizer_that_is_missing_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(
        EmbeddingModelError, match="no tokenizer file for tokenizer 'gone'"
    ) as caught:
        create_tokenizers(DEFAULT_EMBEDDING_MODEL, {"gone": tmp_path / "nothing"})
    assert caught.value.location == str(tmp_path / "nothing")

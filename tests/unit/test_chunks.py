"""Overlapping chunks of long texts (core/chunks.py)."""

from __future__ import annotations

import pytest

from somafractalmemory.core.chunks import chunk_text


def test_a_short_text_is_one_chunk_as_given() -> None:
    assert chunk_text("  two   words ", size=5, overlap=1) == ["  two   words "]


def test_windows_overlap_and_the_last_reaches_the_end() -> None:
    words = [f"w{i}" for i in range(23)]
    chunks = chunk_text(" ".join(words), size=10, overlap=3)
    assert [c.split() for c in chunks] == [words[0:10], words[7:17], words[14:23]]


def test_every_word_is_in_a_chunk_at_the_default_size() -> None:
    words = [f"w{i}" for i in range(450)]
    chunks = chunk_text(" ".join(words))
    assert len(chunks) == 4
    assert {w for c in chunks for w in c.split()} == set(words)
    assert all(len(c.split()) <= 160 for c in chunks)


def test_an_overlap_as_large_as_the_chunk_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("a b c", size=2, overlap=2)

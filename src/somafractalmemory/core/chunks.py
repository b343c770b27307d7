"""Long texts split into overlapping chunks for embedding.

The local model reads 256 tokens and drops the rest, so a fact at the end of a long message
would never reach its vector. A text longer than :data:`CHUNK_WORDS` words is embedded as
windows of that many words, each overlapping the previous one by :data:`OVERLAP_WORDS`
words; search takes the best chunk of each message, so the message is found once. 160
English words are about 210 of the model's word-piece tokens, which leaves room for long
words and numbers inside the window.
"""

from __future__ import annotations

CHUNK_WORDS = 160
OVERLAP_WORDS = 40


def chunk_text(text: str, size: int = CHUNK_WORDS, overlap: int = OVERLAP_WORDS) -> list[str]:
    """The text itself when it has at most ``size`` words, else windows of ``size`` words
    starting every ``size - overlap`` words, the last one ending at the text's end."""
    if not 0 <= overlap < size:
        raise ValueError("the overlap must be smaller than the chunk")
    words = text.split()
    if len(words) <= size:
        return [text]
    step = size - overlap
    chunks: list[str] = []
    start = 0
    while True:
        chunks.append(" ".join(words[start : start + size]))
        if start + size >= len(words):
            return chunks
        start += step

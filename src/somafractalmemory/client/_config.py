"""What both clients share: headers, timeouts and the retry schedule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

import httpx
from tenacity import retry_if_exception, stop_after_attempt, wait_exponential, wait_random
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from somafractalmemory import __version__
from somafractalmemory.client._calls import Retry

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.25
DEFAULT_MAX_BACKOFF = 4.0
#: The header a write answer carries and a later request sends back.
CONSISTENCY_HEADER = "SFM-Consistency-Token"


def newer_token(kept: str | None, received: str) -> str:
    """Which of two consistency tokens to keep. Tokens are opaque; when both are unsigned
    decimal integers the greater is the newer (answers may arrive out of order, and must not
    move the token back); otherwise the one received last wins."""
    if kept is not None and _decimal(kept) and _decimal(received):
        return received if int(received) >= int(kept) else kept
    return received


def _decimal(token: str) -> bool:
    return token.isascii() and token.isdigit()


class HttpOptions(TypedDict):
    """Keyword arguments for ``httpx.Client`` and ``httpx.AsyncClient``."""

    base_url: str
    headers: dict[str, str]
    timeout: httpx.Timeout


class RetryOptions(TypedDict):
    """Keyword arguments for tenacity's ``Retrying`` and ``AsyncRetrying``."""

    stop: stop_base
    wait: wait_base
    retry: retry_base
    reraise: bool


@dataclass(frozen=True)
class ClientConfig:
    """Where SFM is, how to authenticate, and how patiently to talk to it."""

    base_url: str
    api_key: str | None
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be 0 or more")
        if not isinstance(self.timeout, httpx.Timeout) and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")

    def http_options(self) -> HttpOptions:
        """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``."""
        headers = {
            "Accept": "application/json",
            "User-Agent": f"somafractalmemory-client/{__version__}",
            **self.headers,
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return {
            "base_url": self.base_url.rstrip("/"),
            "headers": headers,
            "timeout": (
                self.timeout
                if isinstance(self.timeout, httpx.Timeout)
                else httpx.Timeout(self.timeout)
            ),
        }

    def retry_options(self, policy: Retry) -> RetryOptions:
        """Keyword arguments for tenacity's ``Retrying`` / ``AsyncRetrying`` under ``policy``."""
        return {
            "stop": stop_after_attempt(self.retries + 1),
            # backoff, 2 * backoff, 4 * backoff ... capped at max_backoff, each plus up to
            # `backoff` of jitter so that many clients do not retry in step.
            "wait": wait_exponential(multiplier=self.backoff, max=self.max_backoff)
            + wait_random(0, self.backoff),
            "retry": retry_if_exception(policy.should_retry),
            "reraise": True,
        }

"""The pure parts of webhooks: the signature, the URL rule and the backoff."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from somafractalmemory.core.webhooks import check_url, retry_delay, sign
from somafractalmemory.errors import InvalidInputError


def test_the_signature_is_the_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"changes": []}'
    expected = hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()
    assert sign("k" * 16, body) == f"sha256={expected}"
    assert sign("k" * 16, body + b" ") != sign("k" * 16, body)


@pytest.mark.parametrize(
    "url", ["https://example.com/hook", "https://10.0.0.1:8443/a?b=c", "https://[::1]/x"]
)
def test_https_urls_are_accepted(url: str) -> None:
    assert check_url(url, allow_http_loopback=False) == url


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/hook", "http://localhost/x", "http://[::1]:9/x", "http://127.5.6.7/"],
)
def test_plain_http_only_to_loopback_and_only_when_allowed(url: str) -> None:
    assert check_url(url, allow_http_loopback=True) == url
    with pytest.raises(InvalidInputError) as refused:
        check_url(url, allow_http_loopback=False)
    assert refused.value.field == "url"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "http://192.168.1.2/hook",
        "ftp://127.0.0.1/x",
        "example.com/hook",
        "https:///nohost",
        "https://example.com:0x50/",
        "https://example.com/#frag",
    ],
)
def test_other_urls_are_a_422_naming_url(url: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        check_url(url, allow_http_loopback=True)
    assert refused.value.field == "url"
    assert refused.value.status_code == 422


def test_the_backoff_doubles_up_to_its_cap() -> None:
    delays = [retry_delay(n, 1.0, 60.0) for n in range(1, 10)]
    for n, delay in enumerate(delays, start=1):
        assert 0.8 * min(60.0, 2.0 ** (n - 1)) <= delay <= min(60.0, 2.0 ** (n - 1))
    assert retry_delay(10_000, 1.0, 60.0) <= 60.0  # no overflow however many failures

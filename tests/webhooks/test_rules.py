"""The retry schedule and the address rules, on their own."""

from __future__ import annotations

import ipaddress
import random

import pytest

from application.errors import InvalidWebhookUrl
from infrastructure.webhooks.addresses import allowed, parse_url
from infrastructure.webhooks.deliveries import RetryPolicy


def test_each_wait_is_at_least_the_one_before_until_the_cap_and_within_its_bounds() -> None:
    policy = RetryPolicy(base_seconds=5, max_seconds=21600, max_attempts=15)
    for seed in range(200):
        rng = random.Random(seed)
        waits = [policy.retry_delay(n, rng) for n in range(1, 15)]
        uncapped = waits[:13]  # 5 * 2^12 = 20480 s, the last ceiling under the 21600 s cap
        assert uncapped == sorted(uncapped)
        for n, wait in enumerate(waits, start=1):
            ceiling = min(5 * 2 ** (n - 1), 21600)
            assert ceiling / 2 <= wait <= ceiling


UNSPECIFIED = "0.0.0.0"  # noqa: S104 - an address to refuse, not one to bind


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     UNSPECIFIED, "224.0.0.251", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::"],
)  # fmt: skip
def test_private_and_special_addresses_are_refused_unless_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not allowed(ip, allow_private=False)
    assert allowed(ip, allow_private=True)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert allowed(ipaddress.ip_address(address), allow_private=False)


def test_a_url_keeps_its_path_query_and_port() -> None:
    target = parse_url("https://hooks.example.com:8443/in/sessions?x=1", allow_private=False)
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 8443)
    assert target.path == "/in/sessions?x=1"
    with pytest.raises(InvalidWebhookUrl):
        parse_url("https://hooks.example.com:0x1/", allow_private=False)

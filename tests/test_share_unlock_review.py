"""An attacker's review of password-protected shares (docs/security.md, 156 on)."""
from __future__ import annotations

import pytest

from tests.conftest import call
from tests.test_shares import make_pro, share_site


@pytest.fixture
def from_address(monkeypatch):
    """Send the following requests from ``address`` (API Gateway's sourceIp)."""
    from chalicelib.api import inputs

    def use(address: str) -> None:
        monkeypatch.setattr(inputs, "client_ip", lambda request: address)
    return use


def _guarded(client, token, name="Guarded", password="open sesame") -> dict:
    make_pro("owner@example.com")
    return share_site(client, token, name, password=password)


# --- 156. A guesser with many addresses is limited per share -----------------------------------

def test_password_guesses_from_many_addresses_are_limited_per_share(client, env, user_token, from_address):
    env(RATE_PASSWORD_PER_MINUTE="5", RATE_PASSWORD_PER_SHARE_PER_MINUTE="12")
    share = _guarded(client, user_token)
    other = _guarded(client, user_token, "Other", password="other")
    answers = []
    for network in range(3):  # three networks, each within its own limit of 5
        from_address(f"198.51.100.{network + 1}")
        answers += [call(client, "GET", f"/s/{share['slug']}/?pw=guess{network}-{n}") for n in range(5)]
    assert [status for status, _, _ in answers] == [401] * 12 + [429] * 3
    # Each guesser is told its own address's limit, not what others used of the share's budget.
    assert [(h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"]) for _, _, h in answers[:2]] == [("5", "4"), ("5", "3")]
    # Every address now, with the right password too: the answer tells no right guess from a wrong one.
    from_address("203.0.113.9")
    status, body, headers = call(client, "GET", f"/s/{share['slug']}/?pw=open%20sesame")
    assert (status, body["code"]) == (429, "RATE_LIMIT") and int(headers["Retry-After"]) >= 1
    assert call(client, "GET", f"/spikes?project={share['slug']}", headers={"X-Share-Password": "open sesame"})[0] == 429
    # Another share has its own budget.
    assert call(client, "GET", f"/s/{other['slug']}/?pw=other")[0] == 200


def test_the_share_wide_password_limit_defaults_above_a_few_networks(env):
    from chalicelib import deps
    env()
    settings = deps.settings()
    assert settings.rate_password_per_share_per_minute == 60 >= 10 * settings.rate_password_per_minute

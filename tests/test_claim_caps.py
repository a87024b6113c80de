"""The agent tier's money paths around a claim, and self-signup's order of checks
(docs/security.md, 169-172). Each test failed before its fix."""
from __future__ import annotations

from tests.conftest import call
from tests.test_agent_tier import agent, configured, racing_posts  # noqa: F401 - fixtures


# --- 169. A refused signup takes none of the signup allowance ------------------------------------

def test_an_invalid_signup_takes_none_of_the_clients_or_everyones_allowance(client, env):
    """Self-signup counted the request against the client's and everyone's allowance before it
    read `scopes` and `expires_at`: a client's mistakes used up its own hour, and a few invalid
    requests from anywhere used up everyone's, turning away every other agent."""
    from chalicelib.store.models import ApiKey, User
    env(RATE_AGENT_SIGNUP_PER_HOUR="1", RATE_AGENT_SIGNUPS_PER_HOUR="1")
    for body in ({"scopes": "reed"}, {"scopes": "read", "expires_at": "2001-01-01T00:00:00Z"},
                 {"expires_at": "2001-01-01T00:00:00Z"}):
        status, refused, _ = call(client, "POST", "/auth/api-key", body)
        assert (status, refused["code"]) == (400, "VALIDATION_ERROR"), (body, refused)
    assert list(ApiKey.scan()) == [] and list(User.scan()) == []
    status, created, _ = call(client, "POST", "/auth/api-key", {"scopes": "read"})
    assert status == 201, created
    status, refused, _ = call(client, "POST", "/auth/api-key", {})
    assert (status, refused["code"]) == (429, "RATE_LIMIT"), refused  # the limits still count valid signups


# --- 170. A capped key's caps bind at every step of a claim ---------------------------------------

def test_a_capped_key_spends_within_its_caps_at_every_step_of_a_claim(client, agent, monkeypatch):
    """Once a claim marked a key-only account, its keys act as the person, whose account is charged,
    but a key's cap bound only charges to the key's own account: until the claim moved the key
    (a claim that failed half-way: until it was called again), a key capped at 2 cents spent
    without limit on the person's agent-tier bill, and none of it was counted on the key."""
    from chalicelib import clock
    from chalicelib.store import accounts as account_store
    from chalicelib.store import key_moves, ledger
    from chalicelib.store.models import LedgerItem
    from tests.test_agent_tier import outbox, post_spike
    from tests.test_shares import share_site
    token, person, _ = agent
    parent = call(client, "POST", "/auth/api-key", {"name": "agent", "monthly_cap_cents": 2})[1]
    child = call(client, "POST", "/auth/api-key", {"name": "sub-agent"}, token=parent["api_key"])[1]
    assert child["monthly_cap_cents"] == 2  # and the parent's cap covers what it spends (121)
    before = share_site(client, parent["api_key"], name="made before the claim")  # free tier: no charge
    # The claim's first step: the account is marked; nothing has moved.
    assert account_store.mark_merged(account_store.get(parent["account_id"], consistent=True), person)
    share_site(client, parent["api_key"], name="made meanwhile")  # the person's: 1 cent
    # Its shares moved, its keys not yet: the child spends the parent's second cent, and no more.
    answers = []
    moving = key_moves.move_to_owner

    def spend_first(*args):
        if not answers:
            answers.extend(post_spike(client, before["slug"], token=child["api_key"])[0] for _ in range(12))
            answers.append(post_spike(client, before["slug"], token=parent["api_key"])[0])
        return moving(*args)
    monkeypatch.setattr(key_moves, "move_to_owner", spend_first)
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": parent["api_key"]}, token=token)
    assert status == 200, body
    monkeypatch.undo()
    assert answers == [201] * 10 + [429] * 3, answers
    # Moved: what the keys spent meanwhile is theirs, and the cap still holds.
    assert post_spike(client, before["slug"], token=parent["api_key"])[0] == 429
    period = clock.current_period()
    assert int(LedgerItem.get(f"keyusage#{parent['key_id']}#{period}").cost) == 2000
    assert int(LedgerItem.get(f"keyusage#{child['key_id']}#{period}").cost) == 1000
    assert int(LedgerItem.get(ledger.user_usage_key(person, period)).cost) == 2000
    # Billed once each, to the person's account (its Stripe customer is read when reported).
    assert [item.user_id for item in outbox()] == [person] * 11


def test_a_claimed_keys_cap_holds_under_concurrent_posts(backend_client, env, stripe_api, store_backend):
    """Amid a claim (marked, the key not moved), many posts at once with a key capped at 1 cent:
    exactly the affordable ones are stored, on DynamoDB Local with 8 at a time."""
    from chalicelib import clock
    from chalicelib.services import quotas
    from chalicelib.services.identity import Principal
    from chalicelib.services.scopes import expand
    from chalicelib.store import accounts as account_store
    from chalicelib.store import apikeys as key_store
    from chalicelib.store.models import LedgerItem, Share, User
    env(STRIPE_SECRET_KEY=stripe_api.api_key, STRIPE_API_BASE=stripe_api.url)
    person = "0b6c0f8e-person-claims-caps"
    User(person, email="person@example.com", tier=quotas.AGENT, created_at="2026-01-01T00:00:00Z",
         active_shares=1, stripe_customer_id="cus_person").save()
    Share("share#sh_claimcapclaimc", share_id="sh_claimcapclaimc", slug="claimcap", owner_id=person,
          name="claimcap", created_at="2026-01-01T00:00:00Z", status="active").save()
    Share("slug#claimcap", share_id="sh_claimcapclaimc").save()
    created = call(backend_client, "POST", "/auth/api-key", {"name": "agent", "monthly_cap_cents": 1})[1]
    assert account_store.mark_merged(account_store.get(created["account_id"], consistent=True), person)
    key = key_store.get(created["key_id"])
    author = Principal(kind="key", user=account_store.get(person, consistent=True), scopes=expand(key.scopes),
                       key=key)
    outcomes = racing_posts("claimcap", store_backend, author=author)
    assert outcomes.count("stored") == 10 and outcomes.count("BUDGET_EXCEEDED") == 6, outcomes
    assert int(LedgerItem.get(f"keyusage#{key.key_id}#{clock.current_period()}").cost) == 1000

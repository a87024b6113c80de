"""The metered agent tier: checkout and webhook, charges and budget caps (429 BUDGET_EXCEEDED),
/usage cost fields, and usage events reported to Stripe (a local fake with meter events)
exactly once, through retries, crashes and outages."""
from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from chalicelib import clock, deps
from chalicelib.services import billing, metering, quotas, usage_report
from chalicelib.services.accounts import user_id_for
from chalicelib.settings import Settings
from chalicelib.store import ledger, meter_events
from chalicelib.store.models import LedgerItem, OutboxItem, Share, Spike, User
from infra import policy
from tests import aws_calls
from tests.conftest import call, sign_in
from tests.fakes.stripe_events import WEBHOOK_SECRET, checkout_session, event, signed, subscription
from tests.test_shares import s3_keys, share_site, upload

EMAIL = "agent-owner@example.com"
SPIKE_EVENT, SHARE_EVENT = "spikes_spike_stored", "spikes_share_created"
SCHEDULE_EVENT = {"version": "0", "account": "123456789012", "region": "us-east-1", "detail": {},
                  "detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-12-01T00:00:00Z",
                  "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
                  "resources": ["arn:aws:events:us-east-1:123456789012:rule/usage_report"]}


@pytest.fixture
def configured(env, stripe_api):
    env(STRIPE_SECRET_KEY=stripe_api.api_key, STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=stripe_api.url,
        STRIPE_AGENT_SPIKE_PRICE_ID="price_agent_spike", STRIPE_AGENT_SHARE_PRICE_ID="price_agent_share",
        STRIPE_MAX_NETWORK_RETRIES="0", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    return stripe_api


@pytest.fixture
def agent(client, configured):
    """A signed-in user on the agent tier with a customer at the fake Stripe: (token, user id, customer)."""
    token = sign_in(client, EMAIL)
    uid = user_id_for(EMAIL)
    configured.customers["cus_agent"] = {"id": "cus_agent", "object": "customer", "email": EMAIL}
    User(uid).update(actions=[User.tier.set(quotas.AGENT), User.stripe_customer_id.set("cus_agent")])
    return token, uid, "cus_agent"


def post_spike(client, project, token=None, comments="x", client_id=None, headers=None):
    body = {"type": "page", "projectKey": project, "comments": comments}
    if client_id:
        body["id"] = client_id
    return call(client, "POST", "/spikes", body, token=token, headers=headers)


def report(now=None):
    """The scheduled function's pass at a chosen time; its AWS calls are checked against the
    usage_report function's own IAM policy (tests/aws_calls.py)."""
    with aws_calls.running_as(policy.USAGE_REPORT_FUNCTION):
        return usage_report.report(deps.settings(), deps.stripe_client, now=now)


def outbox(queue_prefix="meter#"):
    return [item for queue in meter_events.QUEUES for item in OutboxItem.query(queue)] \
        if queue_prefix == "meter#" else list(OutboxItem.query(queue_prefix))


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- checkout and webhook --------------------------------------------------------------------

def test_checkout_for_the_agent_tier_uses_the_metered_prices(client, configured):
    token = sign_in(client, EMAIL)
    status, body, _ = call(client, "GET", "/billing/checkout?tier=agent", token=token)
    assert status == 200 and body["url"].startswith("https://checkout.stripe.com/")
    [session] = configured.calls("/v1/checkout/sessions")
    form = session.form
    assert form["line_items[0][price]"] == "price_agent_spike" and form["line_items[1][price]"] == "price_agent_share"
    assert "line_items[0][quantity]" not in form  # metered prices take none
    assert form["metadata[tier]"] == "agent" and form["subscription_data[metadata][tier]"] == "agent"
    anchor = datetime.fromtimestamp(int(form["subscription_data[billing_cycle_anchor]"]), timezone.utc)
    assert (anchor.day, anchor.hour, anchor.minute) == (1, 0, 0) and anchor > datetime.now(timezone.utc)
    # Pro checkout is unchanged; an unknown tier is a validation error.
    assert call(client, "GET", "/billing/checkout", token=token)[0] == 200
    assert configured.calls("/v1/checkout/sessions")[-1].form["line_items[0][price]"] == "price_pro"
    status, body, _ = call(client, "GET", "/billing/checkout?tier=platinum", token=token)
    assert status == 400 and body["details"][0]["field"] == "tier"


def test_agent_checkout_needs_the_agent_prices(client, env, stripe_api):
    env(STRIPE_SECRET_KEY=stripe_api.api_key, STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=stripe_api.url)
    token = sign_in(client, EMAIL)
    status, body, _ = call(client, "GET", "/billing/checkout?tier=agent", token=token)
    assert (status, body["code"]) == (404, "BILLING_NOT_CONFIGURED")
    assert "SPIKES_STRIPE_AGENT_SPIKE_PRICE_ID" in body["error"]  # which settings are missing


def deliver(client, evt):
    raw, headers = signed(evt)
    return call(client, "POST", "/webhooks/stripe", raw=raw, headers=headers)


def test_webhook_moves_users_onto_and_off_the_agent_tier(client, configured):
    token = sign_in(client, EMAIL)
    uid = user_id_for(EMAIL)
    now = int(time.time())
    completed = checkout_session(uid, customer="cus_a", sub_id="sub_agent")
    completed["metadata"]["tier"] = "agent"
    assert deliver(client, event("checkout.session.completed", completed, now))[0] == 200
    assert User.get(uid).tier == "agent"
    status, usage, _ = call(client, "GET", "/usage", token=token)
    assert usage["tier"] == "agent" and usage["spike_limit"] is None and usage["share_limit"] is None
    # Already on the tier: no second subscription; switching goes through the portal.
    assert call(client, "GET", "/billing/checkout?tier=agent", token=token)[1]["url"] is None
    assert call(client, "GET", "/billing/checkout", token=token)[1]["url"] is None

    ended = subscription("canceled", uid, sub_id="sub_agent", customer="cus_a")
    assert deliver(client, event("customer.subscription.deleted", ended, now + 10))[0] == 200
    assert User.get(uid).tier == "free"
    # A subscription carrying an agent price is the agent tier even without our metadata.
    sub = subscription("active", uid, sub_id="sub_agent2", customer="cus_a")
    sub["items"]["data"] = [{"id": "si_1", "price": {"id": "price_agent_spike"}},
                            {"id": "si_2", "price": {"id": "price_agent_share"}}]
    User(uid).update(actions=[User.subscription_id.remove()])
    assert deliver(client, event("customer.subscription.created", sub, now + 20))[0] == 200
    assert User.get(uid).tier == "agent"
    # Switched to Pro's flat price in the portal: the subscription keeps our agent metadata,
    # but its price decides (else usage would be metered with no price billing it).
    switched = subscription("active", uid, sub_id="sub_agent2", customer="cus_a")
    switched["metadata"]["tier"] = "agent"
    switched["items"]["data"] = [{"id": "si_3", "price": {"id": "price_pro"}}]
    assert deliver(client, event("customer.subscription.updated", switched, now + 30))[0] == 200
    assert User.get(uid).tier == "pro"


# --- charges, /usage, reporting exactly once --------------------------------------------------

def test_spikes_and_shares_are_charged_and_reported_once(client, agent, configured):
    token, uid, customer = agent
    share = share_site(client, token, name="metered")  # 1 cent
    for i in range(3):  # 0.1 cent each
        assert post_spike(client, share["slug"], client_id=f"client-{i}")[0] == 201
    assert post_spike(client, share["slug"], client_id="client-0")[0] == 201  # a retry: stored once, charged once

    status, usage, _ = call(client, "GET", "/usage", token=token)
    assert status == 200
    assert usage["tier"] == "agent" and usage["spikes"] == 3 and usage["shares"] == 1
    assert usage["cost_this_period_cents"] == 2  # 1.3 cents, rounded up
    assert isinstance(usage["cost_this_period_cents"], int)
    assert usage["monthly_cap_cents"] is None
    assert usage["period_ends"] == clock.iso(clock.next_period_start())
    assert len(outbox()) == 4

    result = report()
    assert result["sent"] == 4 and result["status"] == "done"
    assert configured.meter_totals() == {(SPIKE_EVENT, customer): 3, (SHARE_EVENT, customer): 1}
    assert outbox() == []
    assert report()["sent"] == 0 and len(configured.calls("/v1/billing/meter_events")) == 4
    spike_event = next(e for e in configured.meter_events.values() if e["event_name"] == SPIKE_EVENT)
    assert spike_event["identifier"].startswith("spike-spk_")
    assert f"share-{share['share_id']}" in configured.meter_events


def test_a_price_the_ledger_cannot_count_exactly_is_refused():
    """Costs are counted in thousandths of a cent: a price of 0.0125 cents was counted as 0.012
    (caps let 4% more through than they allow, /usage showed less than Stripe bills) and one
    under 0.001 as nothing at all (no cap held). Such a price, or a negative one, is refused
    when the settings load."""
    for field in ("agent_price_per_spike_cents", "agent_price_per_share_cents"):
        for price in ("0.0125", "0.0004", "1E-4", "-1"):
            with pytest.raises(ValidationError):
                Settings(**{field: price})
    settings = Settings(agent_price_per_spike_cents="0.125", agent_price_per_share_cents="2")
    assert metering.price(settings, metering.SPIKE) == 125 and metering.price(settings, metering.SHARE) == 2000
    assert metering.price(Settings(agent_price_per_spike_cents="0.0010"), metering.SPIKE) == 1


def test_free_and_pro_owners_are_never_metered(client, configured):
    token = sign_in(client, "free@example.com")
    share = share_site(client, token)
    post_spike(client, share["slug"])
    assert outbox() == []
    assert "cost_this_period_cents" not in call(client, "GET", "/usage", token=token)[1]


def test_a_crash_after_stripe_accepted_does_not_bill_twice(client, agent, configured, monkeypatch):
    token, _, customer = agent
    share = share_site(client, token)
    original = OutboxItem.delete

    def crash_once(self, *args, **kwargs):
        monkeypatch.setattr(OutboxItem, "delete", original)
        raise RuntimeError("Lambda killed after Stripe answered")
    monkeypatch.setattr(OutboxItem, "delete", crash_once)
    with pytest.raises(RuntimeError):
        report()
    assert len(configured.meter_events) == 1 and len(outbox()) == 1
    # The next run sends it again under the same identifier and idempotency key.
    later = time.time() + usage_report.LEASE_SECONDS + 1
    assert report(now=later)["sent"] == 1
    assert outbox() == []
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1}
    keys = {r.headers["idempotency-key"] for r in configured.calls("/v1/billing/meter_events")}
    assert keys == {f"spikes-meter-share-{share['share_id']}-{customer}"}


def test_events_survive_stripe_being_unreachable_for_hours(client, agent, configured, env):
    token, _, customer = agent
    share = share_site(client, token)
    post_spike(client, share["slug"])
    env(STRIPE_API_BASE=f"http://127.0.0.1:{dead_port()}")  # Stripe unreachable
    start = time.time()
    for hour in range(3):
        result = report(now=start + hour * 3600)
        assert result["status"] == "stripe-unavailable" and result["sent"] == 0
    items = outbox()
    assert len(items) == 2 and max(int(i.attempts) for i in items) >= 1
    assert all(i.last_error for i in items if i.attempts)
    # A failing event waits for its backoff; the others are still sent in order next time.
    env(STRIPE_API_BASE=configured.url)
    result = report(now=start + 6 * 3600)
    assert result["sent"] == 2 and outbox() == []
    assert configured.meter_totals() == {(SPIKE_EVENT, customer): 1, (SHARE_EVENT, customer): 1}


def test_stripe_errors_are_retried_later_and_refusals_kept_aside(client, agent, configured):
    token, uid, _ = agent
    share = share_site(client, token)
    configured.fail_next(500)
    assert report()["status"] == "stripe-unavailable"
    [item] = outbox()
    assert int(item.attempts) == 1 and item.next_attempt_at > time.time()
    assert report()["sent"] == 0  # not due yet
    # Stripe refuses an event for good (the customer was deleted): kept in the dead queue.
    configured.customers.clear()
    result = report(now=time.time() + 3600)
    assert result["dead"] == 1 and outbox() == []
    [dead] = outbox(meter_events.DEAD_QUEUE)
    assert dead.identifier == f"share-{share['share_id']}" and "No such customer" in dead.last_error


def test_queued_usage_goes_to_the_customer_that_replaced_a_deleted_one(client, agent, configured):
    """docs/security.md, finding 37: events queued before the customer was replaced are billed
    to the replacement."""
    token, uid, old = agent
    share = share_site(client, token)
    post_spike(client, share["slug"])
    assert {item.customer_id for item in outbox()} == {old, None}  # a post's owner may come from a hint
    configured.delete_customer(old)  # deleted in the Stripe Dashboard, then replaced by checkout
    new = billing.ensure_customer(deps.stripe_client(), User.get(uid), replacing=old)
    assert new != old and User.get(uid).stripe_customer_id == new
    result = report()
    assert result["sent"] == 2 and result["dead"] == 0 and outbox(meter_events.DEAD_QUEUE) == []
    assert configured.meter_totals() == {(SPIKE_EVENT, new): 1, (SHARE_EVENT, new): 1}


def test_an_event_refused_for_a_customer_replaced_meanwhile_is_sent_to_the_new_one(client, agent, configured,
                                                                                  monkeypatch):
    token, uid, old = agent
    share = share_site(client, token)
    configured.delete_customer(old)
    new = billing.ensure_customer(deps.stripe_client(), User.get(uid), replacing=old)
    reads = []
    real = usage_report.account_store.stripe_customer

    def read_before_the_replacement(user_id):  # the first read happened just before the swap
        reads.append(user_id)
        return old if len(reads) == 1 else real(user_id)
    monkeypatch.setattr(usage_report.account_store, "stripe_customer", read_before_the_replacement)
    assert report()["sent"] == 1 and outbox(meter_events.DEAD_QUEUE) == []
    assert configured.meter_totals() == {(SHARE_EVENT, new): 1}
    # Stripe keeps the refusal under the first key: the resend to the replacement has its own.
    keys = [r.headers["idempotency-key"] for r in configured.calls("/v1/billing/meter_events")]
    assert keys == [f"spikes-meter-share-{share['share_id']}-{customer}" for customer in (old, new)]


def test_the_scheduled_function_reports(client, agent, configured):
    token, _, customer = agent
    share_site(client, token)
    payload = client.lambda_.invoke("usage_report", SCHEDULE_EVENT).payload
    assert payload["sent"] == 1, payload
    assert configured.meter_totals() == {(SHARE_EVENT, customer): 1}


def test_concurrent_reports_send_each_event_once(client, agent, configured):
    """Two runs racing over the same events: the lease lets only one send each."""
    token, _, customer = agent
    share = share_site(client, token)
    for i in range(5):
        post_spike(client, share["slug"], client_id=f"c{i}")
    [first, *_] = outbox()
    assert meter_events.lease(first, time.time(), usage_report.LEASE_SECONDS) is True
    assert meter_events.lease(first, time.time(), usage_report.LEASE_SECONDS) is False  # held
    result = report()
    assert result["skipped"] == 1 and result["sent"] == 5
    assert report(now=time.time() + usage_report.LEASE_SECONDS + 1)["sent"] == 1
    assert configured.meter_totals() == {(SPIKE_EVENT, customer): 5, (SHARE_EVENT, customer): 1}
    assert len(configured.calls("/v1/billing/meter_events")) == 6


# --- budget caps -----------------------------------------------------------------------------

def test_account_cap_refuses_with_budget_exceeded_before_storing(client, agent, configured):
    token, uid, _ = agent
    share = share_site(client, token)  # 1 cent
    status, body, _ = call(client, "PATCH", "/me", {"monthly_cap_cents": 2}, token=token)
    assert status == 200 and body["monthly_cap_cents"] == 2
    assert call(client, "GET", "/me", token=token)[1] == body  # GET /me shows what PATCH /me set
    for i in range(10):  # 1 cent + 10 x 0.1 cent = the cap exactly
        assert post_spike(client, share["slug"], client_id=f"c{i}")[0] == 201, i
    status, body, headers = post_spike(client, share["slug"], client_id="one-too-many")
    assert (status, body["code"], body["cap"]) == (429, "BUDGET_EXCEEDED", "account")
    assert "monthly_cap_cents" not in body  # a reviewer is not told the owner's cap (docs/security.md, 155)
    status, body, _ = post_spike(client, share["slug"], token=token, client_id="one-too-many")
    assert (status, body["cap"], body["monthly_cap_cents"]) == (429, "account", 2)
    assert body["period_ends"] == clock.iso(clock.next_period_start())
    assert len(list(Spike.partition_index.query(share["share_id"]))) == 10
    assert len(outbox()) == 11
    usage = call(client, "GET", "/usage", token=token)[1]
    assert usage["cost_this_period_cents"] == 2 and usage["monthly_cap_cents"] == 2 and usage["spikes"] == 10

    # A share past the cap is refused before any file is uploaded.
    before = s3_keys()
    status, body, _ = upload(client, token, metadata={"name": "over budget"})
    assert (status, body["code"]) == (429, "BUDGET_EXCEEDED")
    assert s3_keys() == before and User.get(uid).active_shares == 1

    # Raising the cap (the owner's session only) reopens it.
    assert call(client, "PATCH", "/me", {"monthly_cap_cents": None}, token=token)[0] == 200
    assert call(client, "GET", "/me", token=token)[1]["monthly_cap_cents"] is None
    assert post_spike(client, share["slug"], client_id="one-too-many")[0] == 201


def test_a_cap_below_one_price_refuses_everything(client, agent):
    token, _, _ = agent
    share = share_site(client, token)
    call(client, "PATCH", "/me", {"monthly_cap_cents": 0}, token=token)
    status, body, _ = post_spike(client, share["slug"])
    assert (status, body["code"]) == (429, "BUDGET_EXCEEDED")


def test_key_cap_bounds_what_the_key_spends(client, agent, configured):
    token, uid, _ = agent
    key = call(client, "POST", "/auth/api-key", {"name": "capped", "monthly_cap_cents": 1}, token=token)[1]
    share = share_site(client, key["api_key"], name="by key")  # 1 cent: the key's whole cap
    status, body, _ = post_spike(client, share["slug"], token=key["api_key"])
    assert (status, body["code"], body["cap"], body["monthly_cap_cents"]) == (429, "BUDGET_EXCEEDED", "key", 1)
    status, body, _ = post_spike(client, share["slug"], headers={"X-API-Key": key["api_key"]})
    assert (status, body["code"]) == (429, "BUDGET_EXCEEDED")
    # The widget (no key) is bounded by the account's cap only.
    assert post_spike(client, share["slug"])[0] == 201
    status, me, _ = call(client, "GET", "/me", token=key["api_key"])
    assert me["usage"] == {"key_id": key["key_id"], "period": clock.current_period(), "spikes": 0, "shares": 1,
                           "cost_this_period_cents": 1, "monthly_cap_cents": 1}
    usage = call(client, "GET", "/usage", token=key["api_key"])[1]
    assert usage["cost_this_period_cents"] == 2 and usage["key"]["cost_this_period_cents"] == 1
    # The owner raises the key's cap; the key works again.
    call(client, "PATCH", f"/auth/api-key/{key['key_id']}", {"monthly_cap_cents": 5}, token=token)
    assert post_spike(client, share["slug"], token=key["api_key"])[0] == 201


def test_the_account_cap_is_the_owners_decision(client, agent):
    token, _, _ = agent
    key = call(client, "POST", "/auth/api-key", {}, token=token)[1]["api_key"]
    status, body, _ = call(client, "PATCH", "/me", {"monthly_cap_cents": 100_000}, token=key)
    assert (status, body["code"], body["required_scope"]) == (403, "SCOPE_DENIED", "account:write")
    assert "spikes login" in body["error"]  # a person's account: its owner signs in (a key-only one is claimed)


def racing_posts(project_key: str, store_backend: str, author=None, count: int = 16) -> list:
    """``count`` spikes posted to ``project_key`` at once (8 at a time on DynamoDB Local; one at a
    time on moto, which is not thread-safe): each one's outcome, "stored" or its error code."""
    import concurrent.futures
    from chalicelib.services import spike_posts
    from chalicelib.services.spike_posts import NewSpike
    settings = deps.settings()

    def post(i):
        try:
            spike_posts.record(NewSpike(type="page", project_key=project_key, client_id=f"race-{i}"), settings,
                               "http://x", author=author)
            return "stored"
        except Exception as exc:  # noqa: BLE001 - the outcome is what is asserted
            return getattr(exc, "code", type(exc).__name__)
    with concurrent.futures.ThreadPoolExecutor(1 if store_backend == "moto" else 8) as pool:
        return list(pool.map(post, range(count)))


def test_the_cap_holds_under_concurrent_posts(backend_client, env, stripe_api, store_backend):
    """Many spikes at once against a nearly spent cap: exactly the affordable ones are stored."""
    client = backend_client
    env(STRIPE_SECRET_KEY=stripe_api.api_key, STRIPE_API_BASE=stripe_api.url)
    uid = user_id_for(EMAIL)
    User(uid, email=EMAIL, tier=quotas.AGENT, created_at="2026-01-01T00:00:00Z", active_shares=1,
         stripe_customer_id="cus_agent", monthly_cap_cents=1).save()
    Share("share#sh_capcapcapcap", share_id="sh_capcapcapcap", slug="cap", owner_id=uid, name="cap",
          created_at="2026-01-01T00:00:00Z", status="active").save()
    Share("slug#cap", share_id="sh_capcapcapcap").save()
    outcomes = racing_posts("cap", store_backend)
    assert outcomes.count("stored") == 10 and outcomes.count("BUDGET_EXCEEDED") == 6, outcomes
    item = LedgerItem.get(ledger.user_usage_key(uid, clock.current_period()))
    assert int(item.cost) == 1000 and int(item.count) == 10


# The CLI's UsageResponse (cli/src/commands/usage.rs): u64 counts, optional limits and cost fields.
USAGE_RESPONSE = {"spikes": (int,), "spike_limit": (int, type(None)), "shares": (int,),
                  "share_limit": (int, type(None)), "tier": (str,), "reset_at": (str, type(None)),
                  "cost_this_period_cents": (int,), "monthly_cap_cents": (int, type(None)),
                  "period_ends": (str,)}


def test_usage_answers_the_clis_struct_on_the_agent_tier(client, agent):
    token, _, _ = agent
    call(client, "PATCH", "/me", {"monthly_cap_cents": 2500}, token=token)
    share_site(client, token)
    status, usage, _ = call(client, "GET", "/usage", token=token)
    assert status == 200
    for field, types in USAGE_RESPONSE.items():
        assert isinstance(usage[field], types) and not isinstance(usage[field], bool), (field, usage[field])
        if isinstance(usage[field], int):
            assert usage[field] >= 0, field
    assert (usage["cost_this_period_cents"], usage["monthly_cap_cents"]) == (1, 2500)
    clock.parse_iso(usage["period_ends"])


def test_a_keys_own_project_spikes_are_charged_to_its_account(client, agent, configured):
    token, uid, customer = agent
    key = call(client, "POST", "/auth/api-key", {"monthly_cap_cents": 1}, token=token)[1]["api_key"]
    for i in range(10):  # 10 x 0.1 cent: the key's cap exactly
        assert post_spike(client, "agent-notes", token=key, client_id=f"n{i}")[0] == 201
    status, body, _ = post_spike(client, "agent-notes", token=key, client_id="n10")
    assert (status, body["code"], body["cap"]) == (429, "BUDGET_EXCEEDED", "key")
    assert len(call(client, "GET", "/spikes", token=key)[1]["data"]) == 10
    assert call(client, "GET", "/usage", token=token)[1]["cost_this_period_cents"] == 1
    assert report()["sent"] == 10
    assert configured.meter_totals() == {(SPIKE_EVENT, customer): 10}


# --- what metering costs on the post path ------------------------------------------------------

@pytest.fixture
def dynamodb_calls(monkeypatch):
    """Every DynamoDB call of a request: (operation, items written when it is a transaction)."""
    from pynamodb.connection.base import Connection
    calls = []
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        calls.append((operation_name, len(operation_kwargs.get("TransactItems", []))))
        return original(self, operation_name, operation_kwargs)
    monkeypatch.setattr(Connection, "_make_api_call", counting)
    return calls


def _warm_post_calls(client, calls, project, **kwargs):
    for i in range(2):  # the first post fills the per-function caches
        calls.clear()
        assert post_spike(client, project, client_id=f"{project}-{time.time_ns()}-{i}", **kwargs)[0] == 201
    return sorted(calls)


def test_metering_adds_no_round_trip_to_a_post(client, agent, dynamodb_calls):
    """A warm post to an agent-tier share with a cap is the same two round trips as any post
    (the rate limit's UpdateItem, one transaction); the transaction holds one more item, the
    usage event. With an API key: the key's GetItem and its owner's, one more item (the key's
    usage). Figures in docs/agents.md."""
    from tests.factories import make_share
    token, uid, _ = agent
    free = make_share("someone-else@example.com", "free-site")
    plain = _warm_post_calls(client, dynamodb_calls, free.slug)
    # Checks of the cached share, slug and owner; the spike; the share's quota and total, the owner's usage.
    assert plain == [("TransactWriteItems", 7), ("UpdateItem", 0)]

    share = share_site(client, token, name="metered-site")
    call(client, "PATCH", "/me", {"monthly_cap_cents": 5000}, token=token)
    charged = _warm_post_calls(client, dynamodb_calls, share["slug"])
    assert [name for name, _ in charged] == [name for name, _ in plain]
    assert charged[0][1] == plain[0][1] + 1  # + the usage event for Stripe

    key = call(client, "POST", "/auth/api-key", {"monthly_cap_cents": 100}, token=token)[1]["api_key"]
    with_key = _warm_post_calls(client, dynamodb_calls, share["slug"], token=key)
    assert with_key == sorted([("GetItem", 0), ("GetItem", 0), ("TransactWriteItems", charged[0][1] + 1),
                               ("UpdateItem", 0)])


def test_a_cap_set_elsewhere_applies_to_the_next_post(client, agent):
    """The owner's cap is cached with the share and checked inside the post's transaction: a cap
    lowered by another function (no cache of ours told) refuses the very next post."""
    token, uid, _ = agent
    share = share_site(client, token)
    assert post_spike(client, share["slug"], client_id="before")[0] == 201
    User(uid).update(actions=[User.monthly_cap_cents.set(1)])  # 1 cent: the share already cost it
    status, body, _ = post_spike(client, share["slug"], client_id="after")
    assert (status, body["code"], body["cap"]) == (429, "BUDGET_EXCEEDED", "account")


def test_a_cold_post_to_an_agent_tier_share_trusts_the_hinted_cap(client, agent, dynamodb_calls):
    """A cold function trusts a hint of the owner's tier, grace and cap (the share's; by slug,
    the claim's hint of the whole share), on the agent tier too: the same round trips as a free
    share's cold post, the cap checked by the post's transaction (figures in docs/agents.md)."""
    from chalicelib.services import targets
    from tests.factories import make_share
    token, _, _ = agent
    free = make_share("someone-else@example.com", "free-cold")
    share = share_site(client, token, name="agent-cold")
    cold = {}
    for key in (free.slug, free.share_id, share["slug"], share["share_id"]):
        targets.forget()
        dynamodb_calls.clear()
        assert post_spike(client, key, client_id=f"cold-{key}")[0] == 201
        cold[key] = sorted(name for name, _ in dynamodb_calls)
    assert cold[share["share_id"]] == cold[free.share_id] == ["BatchGetItem", "TransactWriteItems", "UpdateItem"]
    assert cold[share["slug"]] == cold[free.slug] == ["GetItem", "TransactWriteItems", "UpdateItem"]


@pytest.mark.parametrize("by", ["id", "slug"])
def test_a_cap_set_after_the_share_was_made_holds_for_a_cold_post(client, agent, by):
    """The hints on the share and its slug's claim still say "no cap" when the owner sets one
    in another function: a cold function's first post is refused by its own transaction, re-read,
    and the cap holds; the hints are corrected."""
    from chalicelib.services import targets
    token, uid, _ = agent
    share = share_site(client, token)  # 1 cent
    key = share["share_id"] if by == "id" else share["slug"]
    User(uid).update(actions=[User.monthly_cap_cents.set(1)])  # elsewhere: the share already cost it
    targets.forget()  # a new function
    status, body, _ = post_spike(client, key, client_id="after")
    assert (status, body["code"], body["cap"]) == (429, "BUDGET_EXCEEDED", "account")
    assert int(Share.get(f"share#{share['share_id']}").owner_cap_cents) == 1
    if by == "slug":
        assert Share.get(f"slug#{share['slug']}").post_hint["owner_cap_cents"] == 1
    assert list(Spike.partition_index.query(share["share_id"])) == []

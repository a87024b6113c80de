"""GET /billing/checkout and /billing/portal against a local fake of the Stripe API."""
from __future__ import annotations

import socket
import threading

import pytest

from chalicelib import deps
from chalicelib.services import billing
from chalicelib.services.accounts import user_id_for
from chalicelib.store.models import User
from tests.conftest import call, login_token_from_mail, sign_in
from tests.lost_answers import write_answer_lost

EMAIL = "owner@example.com"


@pytest.fixture
def configured(env, stripe_api):
    env(STRIPE_SECRET_KEY=stripe_api.api_key, STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=stripe_api.url,
        STRIPE_MAX_NETWORK_RETRIES="0", BILLING_SUCCESS_URL="https://app.example/thanks",
        BILLING_CANCEL_URL="https://app.example/pricing")
    return stripe_api


def stored_user() -> User:
    return User.get(user_id_for(EMAIL), consistent_read=True)


# --- checkout --------------------------------------------------------------------------------

def test_checkout_creates_customer_and_subscription_session(client, user_token, configured):
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200, body
    assert body["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")

    uid = user_id_for(EMAIL)
    [customer_call] = configured.calls("/v1/customers")
    assert customer_call.form["email"] == EMAIL and customer_call.form["metadata[user_id]"] == uid
    assert customer_call.headers["idempotency-key"] == f"spikes-customer-{uid}"
    customer_id = stored_user().stripe_customer_id
    assert customer_id in configured.customers

    [session_call] = configured.calls("/v1/checkout/sessions")
    form = session_call.form
    assert form["mode"] == "subscription"
    assert form["line_items[0][price]"] == "price_pro" and form["line_items[0][quantity]"] == "1"
    assert form["customer"] == customer_id
    assert form["client_reference_id"] == uid and form["metadata[user_id]"] == uid
    assert form["subscription_data[metadata][user_id]"] == uid
    assert form["success_url"] == "https://app.example/thanks" and form["cancel_url"] == "https://app.example/pricing"


def test_checkout_reuses_the_stored_customer(client, user_token, configured):
    call(client, "GET", "/billing/checkout", token=user_token)
    first = stored_user().stripe_customer_id
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200 and body["url"]
    assert len(configured.calls("/v1/customers")) == 1
    assert [c.form["customer"] for c in configured.calls("/v1/checkout/sessions")] == [first, first]


def checkouts_at_once(count: int) -> list:
    """``count`` checkouts of the signed-in user released together (service level: chalice's
    test client swaps os.environ per call and is not thread-safe); their answers."""
    settings = deps.settings()
    results, errors = [], []
    barrier = threading.Barrier(count)

    def go():
        try:
            fresh = stored_user()
            barrier.wait()
            results.append(billing.checkout(settings, deps.stripe_client, fresh, "https://api.example"))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
    threads = [threading.Thread(target=go) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_concurrent_first_checkouts_end_with_one_customer(backend_client, store_backend, configured):
    if store_backend == "moto":
        pytest.skip("moto's in-memory tables are not thread-safe (this failed on it once); DynamoDB Local is")
    sign_in(backend_client, EMAIL)
    results = checkouts_at_once(4)
    assert len(results) == 4 and all(r["url"] for r in results)
    assert len(configured.calls("/v1/customers")) == 4  # all four raced past the "no customer yet" check
    assert len(configured.customers) == 1  # one idempotency key -> one Stripe customer
    stored = stored_user().stripe_customer_id
    assert {c.form["customer"] for c in configured.calls("/v1/checkout/sessions")} == {stored}


def test_stored_customer_is_never_overwritten(client, user_token, configured):
    stale = stored_user()  # read before another request stored a customer
    User(stale.user_id).update(actions=[User.stripe_customer_id.set("cus_already_there")])
    customer_id = billing.ensure_customer(deps.stripe_client(), stale)
    assert customer_id == "cus_already_there"
    assert stored_user().stripe_customer_id == "cus_already_there"


def test_checkout_for_pro_user_answers_null_url_with_message(client, user_token, configured):
    User(user_id_for(EMAIL)).update(actions=[User.tier.set("pro")])
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200
    assert body["url"] is None and "Pro" in body["message"]
    assert configured.requests == []


def test_checkout_when_grace_has_expired_offers_checkout_again(client, user_token, configured):
    User(user_id_for(EMAIL)).update(actions=[User.tier.set("pro"), User.grace_until.set(1)])
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200 and body["url"]


def test_checkout_while_the_subscription_is_paused_sends_to_the_portal(client, user_token, configured):
    # A paused subscription (the portal's pause, or Stripe's own `paused`) charges nothing, so the
    # account is free here; a second subscription would be charged next to it once it resumes.
    User(user_id_for(EMAIL)).update(actions=[User.subscription_id.set("sub_A"), User.stripe_customer_id.set("cus_A"),
                                             User.subscription_status.set("paused")])
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200 and body["url"] is None, body
    assert "paused" in body["message"] and "GET /billing/portal" in body["message"]
    assert configured.calls("/v1/checkout/sessions") == []
    # Once it is cancelled for good, a new subscription is the way back.
    User(user_id_for(EMAIL)).update(actions=[User.subscription_status.set("canceled")])
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200 and body["url"].startswith("https://checkout.stripe.com/")


def test_checkout_requires_a_bearer_token(client, configured):
    status, body, _ = call(client, "GET", "/billing/checkout")
    assert status == 401 and body["code"] == "AUTH_REQUIRED"
    status, body, _ = call(client, "GET", "/billing/checkout", token="not-a-token")
    assert status == 401 and body["code"] == "AUTH_FAILED"


def test_billing_not_configured_is_a_clear_error(client, user_token):
    for path in ("/billing/checkout", "/billing/portal"):
        status, body, _ = call(client, "GET", path, token=user_token)
        assert status == 404, body  # permanent: a 4xx, so the CLI shows this message
        assert body["code"] == "BILLING_NOT_CONFIGURED" and body["request_id"]
        # What is missing, and where it is explained: `make dev`'s newcomer is often its operator.
        assert body["error"] == ("Billing is not configured on this server (its operator sets "
                                 "SPIKES_STRIPE_SECRET_KEY and SPIKES_STRIPE_PRICE_ID: docs/billing.md)")


def test_checkout_without_price_is_not_configured(client, user_token, env, stripe_api):
    env(STRIPE_SECRET_KEY=stripe_api.api_key, STRIPE_API_BASE=stripe_api.url)
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 404 and body["code"] == "BILLING_NOT_CONFIGURED"
    assert stripe_api.requests == []


def test_stripe_unreachable_is_503_with_retry_after(client, user_token, env):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    env(STRIPE_SECRET_KEY="sk_test_fake", STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=f"http://127.0.0.1:{dead_port}",
        STRIPE_MAX_NETWORK_RETRIES="0")
    status, body, headers = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 503 and body["code"] == "SERVICE_UNAVAILABLE"
    assert headers["Retry-After"] == "2"
    assert stored_user().stripe_customer_id is None


def test_stripe_server_error_is_503(client, user_token, configured):
    configured.fail_next(500)
    status, body, headers = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 503 and body["code"] == "SERVICE_UNAVAILABLE" and "Retry-After" in headers


def test_rejected_api_key_is_reported_as_configuration_error(client, user_token, configured, env):
    env(STRIPE_SECRET_KEY="sk_test_wrong", STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=configured.url,
        STRIPE_MAX_NETWORK_RETRIES="0")
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 404 and body["code"] == "BILLING_NOT_CONFIGURED"


# --- portal ----------------------------------------------------------------------------------

def test_portal_without_customer_is_404(client, user_token, configured):
    status, body, _ = call(client, "GET", "/billing/portal", token=user_token)
    assert status == 404 and body["code"] == "NOT_FOUND" and "upgrade" in body["error"]
    assert configured.requests == []


def test_portal_returns_session_url_for_the_customer(client, user_token, configured, env):
    env(STRIPE_SECRET_KEY=configured.api_key, STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=configured.url,
        STRIPE_MAX_NETWORK_RETRIES="0", BILLING_RETURN_URL="https://app.example/account")
    call(client, "GET", "/billing/checkout", token=user_token)
    customer_id = stored_user().stripe_customer_id
    status, body, _ = call(client, "GET", "/billing/portal", token=user_token)
    assert status == 200, body
    assert body["url"].startswith("https://billing.stripe.com/p/session/")
    [portal_call] = configured.calls("/v1/billing_portal/sessions")
    assert portal_call.form == {"customer": customer_id, "return_url": "https://app.example/account"}


def test_portal_for_another_user_uses_their_own_customer(client, user_token, configured):
    call(client, "GET", "/billing/checkout", token=user_token)
    other = sign_in(client, "someone@example.com")
    status, body, _ = call(client, "GET", "/billing/portal", token=other)
    assert status == 404


# --- secrets from SSM Parameter Store --------------------------------------------------------

def test_stripe_secrets_come_from_ssm_parameter_store(client, user_token, env, stripe_api):
    import boto3
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/spikes/test/stripe_secret_key", Value=stripe_api.api_key, Type="SecureString")
    ssm.put_parameter(Name="/spikes/test/stripe_webhook_secret", Value="whsec_from_ssm", Type="SecureString")
    env(SSM_PARAMETER_PATH="/spikes/test/", STRIPE_SECRET_KEY="sk_test_overridden_by_ssm",
        STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=stripe_api.url, STRIPE_MAX_NETWORK_RETRIES="0")
    settings = deps.settings()
    assert settings.stripe_secret_key.get_secret_value() == stripe_api.api_key
    assert settings.stripe_webhook_secret.get_secret_value() == "whsec_from_ssm"
    assert "whsec_from_ssm" not in repr(settings)
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200 and body["url"]


# --- a customer deleted in the Stripe Dashboard ------------------------------------------------

def test_checkout_replaces_a_customer_deleted_at_stripe(client, user_token, configured):
    User(user_id_for(EMAIL)).update(actions=[User.stripe_customer_id.set("cus_deleted")])
    status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 200 and body["url"], body
    replacement = stored_user().stripe_customer_id
    assert replacement != "cus_deleted" and replacement in configured.customers
    [customer_call] = configured.calls("/v1/customers")
    assert customer_call.headers["idempotency-key"].endswith("-replaces-cus_deleted")
    assert [c.form["customer"] for c in configured.calls("/v1/checkout/sessions")] == ["cus_deleted", replacement]


def test_replacement_never_overwrites_a_concurrent_replacement(client, user_token, configured):
    stale = stored_user()
    stale.stripe_customer_id = "cus_deleted"  # what this request saw
    User(stale.user_id).update(actions=[User.stripe_customer_id.set("cus_fresh_from_elsewhere")])
    assert billing.ensure_customer(deps.stripe_client(), stale, replacing="cus_deleted") == "cus_fresh_from_elsewhere"
    assert stored_user().stripe_customer_id == "cus_fresh_from_elsewhere"


def test_portal_for_a_customer_deleted_at_stripe_is_404(client, user_token, configured):
    User(user_id_for(EMAIL)).update(actions=[User.stripe_customer_id.set("cus_deleted")])
    status, body, _ = call(client, "GET", "/billing/portal", token=user_token)
    assert status == 404 and body["code"] == "NOT_FOUND" and "upgrade" in body["error"]


# --- one payable Checkout session per account (docs/security.md, finding 36) ------------------

def checkout_url(client, token) -> str:
    status, body, _ = call(client, "GET", "/billing/checkout", token=token)
    assert status == 200 and body["url"], body
    return body["url"]


def session_id_of(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def test_a_second_checkout_expires_the_first(client, user_token, configured):
    first = session_id_of(checkout_url(client, user_token))
    second = session_id_of(checkout_url(client, user_token))
    assert configured.checkout_sessions[first]["status"] == "expired"
    with pytest.raises(ValueError):  # the first tab's page can no longer be paid
        configured.complete_checkout(first)
    assert configured.open_checkouts() == [second]
    assert stored_user().open_checkout_id == second
    configured.complete_checkout(second)
    assert len(configured.subscriptions) == 1


def test_a_checkout_whose_stored_answer_was_lost_hands_out_an_open_session(client, user_token, configured):
    """Storing the new session was made, its answer lost and the write sent again (the SDK
    retries a 500): refused by its own compare-and-set, it read as another checkout's, so the
    session was expired as 'the one before' and its URL handed out, dead (finding 70)."""
    first = session_id_of(checkout_url(client, user_token))
    with write_answer_lost("update_item", "users") as lost:
        second = session_id_of(checkout_url(client, user_token))
    assert lost and configured.open_checkouts() == [second] and stored_user().open_checkout_id == second
    assert configured.checkout_sessions[first]["status"] == "expired"
    configured.complete_checkout(second)


def test_a_checkout_paid_meanwhile_is_not_sold_again(client, user_token, configured):
    first = session_id_of(checkout_url(client, user_token))
    subscription = configured.complete_checkout(first)  # paid; its webhook has not arrived yet
    for _ in range(2):  # also when asked again: the paid session stays the one on record
        status, body, _ = call(client, "GET", "/billing/checkout", token=user_token)
        assert status == 200 and body["url"] is None and "just completed" in body["message"]
    assert len(configured.checkout_sessions) == 1 and configured.open_checkouts() == []
    assert stored_user().open_checkout_id == first
    # Once that subscription has ended (cancelled, the account free again), a new checkout opens.
    configured.subscriptions[subscription]["status"] = "canceled"
    second = session_id_of(checkout_url(client, user_token))
    assert configured.open_checkouts() == [second] and stored_user().open_checkout_id == second


def test_a_session_created_while_the_first_was_paid_is_expired_too(client, user_token, configured):
    stale = stored_user()  # read before the first checkout stored its session
    first = session_id_of(checkout_url(client, user_token))
    configured.complete_checkout(first)
    answer = billing.checkout(deps.settings(), deps.stripe_client, stale, "https://api.example")
    assert answer["url"] is None and "just completed" in answer["message"]
    [_, second] = configured.checkout_sessions  # created before the compare-and-set saw the first
    assert configured.checkout_sessions[second]["status"] == "expired" and configured.open_checkouts() == []
    assert stored_user().open_checkout_id == first


def test_a_checkout_after_the_last_one_expired_opens_a_new_one(client, user_token, configured):
    first = session_id_of(checkout_url(client, user_token))
    configured.checkout_sessions[first].update(status="expired", url=None)  # Stripe's 24 hours passed
    second = session_id_of(checkout_url(client, user_token))
    assert configured.open_checkouts() == [second]
    [retrieve] = configured.calls(f"/v1/checkout/sessions/{first}")
    assert retrieve.method == "GET" and retrieve.form["expand[0]"] == "subscription"


def test_stripe_failing_to_expire_the_last_session_is_a_503_that_keeps_it_on_record(client, user_token, configured):
    first = session_id_of(checkout_url(client, user_token))
    configured.fail_next(500)  # the expiry of the first session
    status, body, headers = call(client, "GET", "/billing/checkout", token=user_token)
    assert status == 503 and body["code"] == "SERVICE_UNAVAILABLE" and headers["Retry-After"]
    assert stored_user().open_checkout_id == first and configured.open_checkouts() == [first]
    second = session_id_of(checkout_url(client, user_token))
    assert configured.open_checkouts() == [second]


def test_concurrent_checkouts_leave_one_payable_session(backend_client, store_backend, configured):
    if store_backend == "moto":
        pytest.skip("moto's in-memory tables are not thread-safe; DynamoDB Local is")
    sign_in(backend_client, EMAIL)
    checkout_url(backend_client, sign_in(backend_client, EMAIL))  # a customer and a first session on record
    results = checkouts_at_once(4)
    assert len(results) == 4 and all(r["url"] for r in results)
    [payable] = configured.open_checkouts()
    assert stored_user().open_checkout_id == payable
    assert [r["url"] for r in results].count(f"https://checkout.stripe.com/c/pay/{payable}") == 1
    assert len(configured.checkout_sessions) == 5



def test_checkout_gives_stripe_an_internationalised_domain_in_its_ascii_form(client, configured):
    """Stripe mails receipts to the customer's address as SES mails sign-in links: an account at
    an internationalised domain (stored as `bücher.de`) is created at Stripe as `xn--bcher-kva.de`,
    the same inbox in the form mail systems take."""
    assert call(client, "POST", "/auth/login", {"email": "dev@bücher.de"})[0] == 200
    verified = call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("dev@xn--bcher-kva.de")})[1]
    assert verified["user"]["email"] == "dev@bücher.de"
    status, body, _ = call(client, "GET", "/billing/checkout", token=verified["token"])
    assert status == 200, body
    [customer_call] = configured.calls("/v1/customers")
    assert customer_call.form["email"] == "dev@xn--bcher-kva.de"

"""Outbound webhooks: the outbox written with the change, signed deliveries to a real HTTP
receiver on loopback, retries with backoff, failure and pause, rotation, SSRF refusals."""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, List

import pytest

from chalicelib import clock as system_clock
from chalicelib import deps
from chalicelib.services import webhook_delivery, webhook_sender, webhook_urls
from chalicelib.settings import Settings
from chalicelib.store import deliveries
from chalicelib.store.models import Delivery, Share
from infra import policy
from tests import aws_calls
from tests.conftest import call, sent_mails
from tests.lost_answers import write_answer_lost
from tests.test_shares import make_pro, share_site


# --- an independent verifier: what a receiver writes (docs/webhooks.md) ----------------------

def verify(secret: str, header: str, body: bytes, tolerance: int = 300, now: float = None) -> bool:
    fields = [part.split("=", 1) for part in header.split(",")]
    timestamp = int(dict(fields)["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs((now or time.time()) - timestamp) <= tolerance
    return fresh and any(k == "v1" and hmac.compare_digest(v, expected) for k, v in fields)


# --- a receiver on loopback ------------------------------------------------------------------

class Receiver:
    def __init__(self) -> None:
        self.requests: List[dict] = []
        self.answers: List[int] = []  # status codes to answer with, in order; then 200
        self.body = b"ok"
        self.delay = 0.0
        self.location = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": self.rfile.read(length)})
                status = receiver.answers.pop(0) if receiver.answers else 200
                time.sleep(receiver.delay)
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                try:
                    self.wfile.write(receiver.body)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooked(client, user_token, env, receiver):
    """A Pro user's share whose webhook points at the loopback receiver."""
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Hooked", webhook_url=receiver.url)
    assert share["webhook_secret"].startswith("whsec_")
    return share


def _deliver(now: float = None) -> webhook_delivery.RunReport:
    """A pass of the scheduled delivery job at ``now``; its AWS calls are checked against the
    job's own role, as if the scheduled function made them."""
    with aws_calls.acting_as(policy.WEBHOOK_DELIVERIES_FUNCTION):
        return webhook_delivery.run_due(deps.settings(), now_fn=(lambda: now) if now else time.time, mailer=deps.mailer())


def _post_spike(client, share, comments="Love it") -> str:
    status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"],
                                                       "comments": comments, "rating": "love"})
    assert status == 201, body
    return body["id"]


def test_spike_created_is_queued_with_the_spike_and_delivered_signed(client, hooked, receiver):
    spike_id = _post_spike(client, hooked)
    assert receiver.requests == []  # nothing is sent while the spike is posted
    queued = list(Delivery.share_index.query(hooked["share_id"]))
    assert [(d.event_type, d.status) for d in queued] == [("spike.created", "pending")]

    report = _deliver()
    assert (report.attempted, report.delivered) == (1, 1)
    [request] = receiver.requests
    headers = request["headers"]
    assert headers["X-Spikes-Event"] == "spike.created"
    assert headers["X-Spikes-Delivery"] == queued[0].delivery_id
    assert verify(hooked["webhook_secret"], headers["X-Spikes-Signature"], request["body"])
    assert not verify("whsec_wrong", headers["X-Spikes-Signature"], request["body"])
    assert not verify(hooked["webhook_secret"], headers["X-Spikes-Signature"], request["body"] + b" ")
    payload = json.loads(request["body"])
    assert payload["type"] == "spike.created" and payload["id"].startswith("evt_")
    assert payload["share"] == {"id": hooked["share_id"], "slug": hooked["slug"], "name": "Hooked"}
    assert payload["spike"]["id"] == spike_id and payload["spike"]["comments"] == "Love it"
    assert _deliver().attempted == 0  # delivered once, not again


def test_events_and_the_delivery_job_read_the_projects_clock(client, hooked, receiver):
    """An event's time, its first attempt and the job's idea of "due" come from chalicelib/clock
    (which tests and a replay fix), not from the machine's wall time: an event recorded at a
    fixed moment three hours ahead is stamped and scheduled then, and a job run at that moment
    finds it due."""
    moment = datetime.now(timezone.utc).replace(microsecond=250_000) + timedelta(hours=3)
    system_clock.use(lambda: moment)
    try:
        _post_spike(client, hooked)
        [queued] = list(Delivery.share_index.query(hooked["share_id"]))
        assert queued.created_at == system_clock.iso_millis(moment)
        assert (queued.next_attempt_at, queued.retry_from) == (int(moment.timestamp()), int(moment.timestamp()))
        with aws_calls.acting_as(policy.WEBHOOK_DELIVERIES_FUNCTION):
            report = webhook_delivery.run_due(deps.settings(), mailer=deps.mailer())  # the clock by default
    finally:
        system_clock.use(None)
    assert (report.attempted, report.delivered) == (1, 1)
    assert json.loads(receiver.requests[0]["body"])["created_at"] == system_clock.iso_millis(moment)


def test_each_delivery_of_a_batch_is_claimed_and_signed_at_its_own_time(client, hooked, receiver):
    # Slow receivers: every delivery of a batch may take a timeout. One signed (and claimed) at
    # the batch's start would reach a receiver past its 300 s tolerance, its claim run out.
    _post_spike(client, hooked, "first")
    _post_spike(client, hooked, "second")
    clock = iter(range(int(time.time()), int(time.time()) + 100_000, 200))
    with aws_calls.acting_as(policy.WEBHOOK_DELIVERIES_FUNCTION):
        report = webhook_delivery.run_due(deps.settings(), now_fn=lambda: next(clock), mailer=deps.mailer())
    assert (report.attempted, report.delivered) == (2, 2)
    signed_at = [int(dict(part.split("=", 1) for part in request["headers"]["X-Spikes-Signature"].split(","))["t"])
                 for request in receiver.requests]
    assert signed_at[1] - signed_at[0] >= 200


def test_a_retried_post_of_the_same_spike_queues_one_event(client, hooked):
    body = {"type": "page", "projectKey": hooked["slug"], "id": "client-1"}
    assert call(client, "POST", "/spikes", body)[0] == 201
    call(client, "POST", "/spikes", body)
    assert len(list(Delivery.share_index.query(hooked["share_id"]))) == 1


def test_shares_without_a_webhook_queue_nothing(client, user_token):
    share = share_site(client, user_token, "Plain")
    _post_spike(client, share)
    assert list(Delivery.share_index.query(share["share_id"])) == []


def test_failing_receiver_is_retried_with_backoff_until_it_recovers(client, hooked, receiver):
    receiver.answers = [500, 503]
    _post_spike(client, hooked)
    start = int(time.time())  # whole seconds: delivery times are stored as whole seconds
    assert _deliver(start).retrying == 1
    [delivery] = Delivery.share_index.query(hooked["share_id"])
    first_wait = delivery.next_attempt_at - start
    assert 15 <= first_wait <= 30  # first retry: half to all of 30 s (jitter)
    assert _deliver(start + 10).attempted == 0  # not due yet
    assert _deliver(start + 31).retrying == 1
    delivery.refresh()
    assert 30 <= delivery.next_attempt_at - (start + 31) <= 60  # doubled
    assert _deliver(start + 200).delivered == 1
    delivery.refresh()
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.last_status_code == 200
    ids = {r["headers"]["X-Spikes-Delivery"] for r in receiver.requests}
    events = {json.loads(r["body"])["id"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and len(ids) == 1 and len(events) == 1  # same event each time

    _, listing, _ = call(client, "GET", f"/v1/shares/{hooked['share_id']}/webhook/deliveries",
                         token=_token(client))
    [entry] = listing["data"]
    assert entry["status"] == "delivered" and entry["attempts"] == 3 and entry["last_status_code"] == 200
    assert entry["event_type"] == "spike.created" and entry["last_error"] is None


def test_a_slow_receiver_costs_a_run_one_timeout_not_one_per_event(client, hooked, receiver, user_token, env):
    # Each event to a receiver that never answers took a whole timeout: one Pro owner's backlog
    # filled every run of the job, and the other shares' deliveries waited (finding 172).
    env(WEBHOOK_TIMEOUT_SECONDS="1")
    receiver.delay = 2.5
    other = Receiver()
    try:
        for n in range(3):
            _post_spike(client, hooked, f"slow {n}")
        healthy = share_site(client, user_token, "Healthy", webhook_url=other.url)
        _post_spike(client, healthy)
        report = _deliver()
        assert len(receiver.requests) == 1 and len(other.requests) == 1
        assert (report.retrying, report.deferred, report.delivered) == (1, 2, 1)
        slow = sorted(Delivery.share_index.query(hooked["share_id"]), key=lambda d: d.attempts)
        assert [d.attempts for d in slow] == [0, 0, 1]
        assert {d.next_attempt_at for d in slow} == {slow[-1].next_attempt_at}  # due with its retry
    finally:
        other.close()


def _token(client) -> str:
    from tests.conftest import sign_in
    return sign_in(client, "owner@example.com")


def test_retry_schedule_spans_at_least_a_day_with_jitter():
    settings = Settings()
    delays = [webhook_delivery.retry_delay(settings, n) for n in range(1, 40)]
    assert delays[0] <= 30 and max(delays) <= settings.webhook_max_retry_delay_seconds
    assert len({webhook_delivery.retry_delay(settings, 8) for _ in range(20)}) > 1  # jittered
    total, attempts = 0, 0
    while total < settings.webhook_retry_window_seconds:
        attempts += 1
        total += webhook_delivery.retry_delay(settings, attempts)
    assert 10 <= attempts <= 30  # a day of retries, not thousands of attempts


def test_persistent_failure_fails_the_delivery_and_pauses_the_share(client, hooked, receiver, env):
    receiver.answers = [500] * 50
    _post_spike(client, hooked)
    start = time.time()
    _deliver(start)
    assert _deliver(start + 23 * 3600).retrying == 1  # still retrying within the day
    report = _deliver(start + 24 * 3600 + 60)
    assert report.failed == 1
    share = Share.get(f"share#{hooked['share_id']}")
    assert share.webhook_paused_at and "HTTP 500" in share.webhook_pause_reason
    [mail] = sent_mails("owner@example.com")[-1:]
    assert "paused" in mail["subject"].lower() and "resume" in mail["body"]
    # The receiver by scheme and host only: many receivers' URLs are their secret.
    assert receiver.url.rsplit("/", 1)[0] + "/…" in mail["body"] and receiver.url not in mail["body"]

    # While paused, new events are held, not sent and not lost.
    sent_before = len(receiver.requests)
    _post_spike(client, hooked, "second")
    assert _deliver(start + 24 * 3600 + 120).paused == 1
    assert len(receiver.requests) == sent_before
    token = _token(client)
    status, state, _ = call(client, "GET", f"/shares/{hooked['slug']}/webhook", token=token)
    assert status == 200 and state["paused"] is True and state["pause_reason"]

    receiver.answers = []
    status, resumed, _ = call(client, "POST", f"/shares/{hooked['slug']}/webhook/resume", token=token)
    assert status == 200 and resumed["queued"] == 1 and resumed["paused"] is False
    assert _deliver().delivered == 1
    assert json.loads(receiver.requests[-1]["body"])["spike"]["comments"] == "second"


def test_rotation_keeps_the_old_secret_valid_for_the_grace_period(client, hooked, receiver):
    token = _token(client)
    status, rotated, _ = call(client, "POST", f"/v1/shares/{hooked['share_id']}/webhook/rotate", token=token)
    assert status == 200 and rotated["webhook_secret"] != hooked["webhook_secret"]
    assert rotated["previous_secret_valid_until"]
    _post_spike(client, hooked)
    _deliver()
    request = receiver.requests[-1]
    assert verify(rotated["webhook_secret"], request["headers"]["X-Spikes-Signature"], request["body"])
    assert verify(hooked["webhook_secret"], request["headers"]["X-Spikes-Signature"], request["body"])

    _post_spike(client, hooked, "after the grace period")
    _deliver(time.time() + 25 * 3600)
    request = receiver.requests[-1]
    signature = request["headers"]["X-Spikes-Signature"]
    assert verify(rotated["webhook_secret"], signature, request["body"], now=int(signature[2:12]))
    assert not verify(hooked["webhook_secret"], signature, request["body"], now=int(signature[2:12]))


def test_secret_is_shown_once_and_a_new_url_gets_a_new_secret(client, hooked, receiver):
    token = _token(client)
    _, listed, _ = call(client, "GET", f"/shares/{hooked['share_id']}", token=token)
    assert "webhook_secret" not in json.dumps(listed)
    _, state, _ = call(client, "GET", f"/shares/{hooked['share_id']}/webhook", token=token)
    assert "webhook_secret" not in state and state["url"] == receiver.url
    status, patched, _ = call(client, "PATCH", f"/shares/{hooked['share_id']}",
                              {"webhook_url": receiver.url + "?v=2"}, token=token)
    assert status == 200 and patched["webhook_secret"] not in (None, hooked["webhook_secret"])
    status, renamed, _ = call(client, "PATCH", f"/shares/{hooked['share_id']}", {"name": "x"}, token=token)
    assert status == 200 and "webhook_secret" not in renamed
    call(client, "PATCH", f"/shares/{hooked['share_id']}", {"webhook_url": ""}, token=token)
    status, body, _ = call(client, "GET", f"/shares/{hooked['share_id']}/webhook", token=token)
    assert status == 404


def test_a_test_event_whose_stored_answer_was_lost_is_sent_once(client, hooked, receiver):
    """Recording the test event was made, its answer lost and the write sent again (the SDK
    retries a 500): its own condition refused it, and the caller got 500 for an event recorded
    and sent later by the job (finding 70)."""
    token = _token(client)
    with write_answer_lost("put_item", "deliveries") as lost:
        status, sent, _ = call(client, "POST", f"/v1/shares/{hooked['slug']}/webhook/test", token=token)
    assert lost and status == 200 and sent["ok"] is True, sent
    assert [r["headers"]["X-Spikes-Event"] for r in receiver.requests] == ["webhook.test"]
    _, listing, _ = call(client, "GET", f"/v1/shares/{hooked['slug']}/webhook/deliveries", token=token)
    assert [d["id"] for d in listing["data"]] == [sent["delivery"]["id"]]


def test_a_rotation_whose_answer_was_lost_hands_out_the_new_secret(client, hooked, receiver):
    """The rotation was made, its answer lost and the write sent again (the SDK retries a 500):
    its own condition refused it, 'changed meanwhile; retry', and that retry rotated away the
    grace of the secret receivers had, for one nobody saw."""
    token = _token(client)
    with write_answer_lost("update_item", "shares") as lost:
        status, rotated, _ = call(client, "POST", f"/v1/shares/{hooked['share_id']}/webhook/rotate", token=token)
    assert lost and status == 200, rotated
    _post_spike(client, hooked)
    _deliver()
    request = receiver.requests[-1]
    assert verify(rotated["webhook_secret"], request["headers"]["X-Spikes-Signature"], request["body"])
    assert verify(hooked["webhook_secret"], request["headers"]["X-Spikes-Signature"], request["body"])


def test_test_event_is_sent_now_and_listed(client, hooked, receiver):
    token = _token(client)
    status, sent, _ = call(client, "POST", f"/v1/shares/{hooked['slug']}/webhook/test", token=token)
    assert status == 200 and sent["ok"] is True
    assert sent["delivery"]["event_type"] == "webhook.test" and sent["delivery"]["last_status_code"] == 200
    request = receiver.requests[-1]
    assert request["headers"]["X-Spikes-Event"] == "webhook.test"
    assert verify(hooked["webhook_secret"], request["headers"]["X-Spikes-Signature"], request["body"])
    receiver.answers = [502]
    status, sent, _ = call(client, "POST", f"/v1/shares/{hooked['slug']}/webhook/test", token=token)
    assert status == 200 and sent["ok"] is False
    assert sent["delivery"]["status"] == "pending" and sent["delivery"]["last_error"] == "HTTP 502"
    _, listing, _ = call(client, "GET", f"/v1/shares/{hooked['slug']}/webhook/deliveries?limit=1", token=token)
    assert [d["id"] for d in listing["data"]] == [sent["delivery"]["id"]]
    status, body, _ = call(client, "GET", f"/v1/shares/{hooked['slug']}/webhook/deliveries?limit=0", token=token)
    assert status == 400 and body["details"][0]["field"] == "limit"
    # Above its maximum a limit is read as the maximum, as /spikes and the key listing do.
    status, capped, _ = call(client, "GET", f"/v1/shares/{hooked['slug']}/webhook/deliveries?limit=5000", token=token)
    assert status == 200 and capped["data"][0]["id"] == sent["delivery"]["id"]


def test_others_cannot_see_or_drive_a_share_webhook(client, hooked):
    from tests.conftest import sign_in
    stranger = sign_in(client, "stranger@example.com")
    for method, path in (("GET", "webhook"), ("GET", "webhook/deliveries"), ("POST", "webhook/test"),
                         ("POST", "webhook/rotate"), ("POST", "webhook/resume")):
        status, body, _ = call(client, method, f"/shares/{hooked['share_id']}/{path}", token=stranger)
        assert status == 404, (path, body)
        assert call(client, method, f"/shares/{hooked['share_id']}/{path}")[0] == 401


def test_resolving_sends_spike_resolved_once(client, hooked, receiver):
    spike_id = _post_spike(client, hooked)
    token = _token(client)
    for _ in range(2):
        assert call(client, "PATCH", f"/spikes/{spike_id}", {"resolved": True}, token=token)[0] == 200
    _deliver()
    types = [r["headers"]["X-Spikes-Event"] for r in receiver.requests]
    assert sorted(types) == ["spike.created", "spike.resolved"]
    resolved = json.loads(next(r["body"] for r in receiver.requests if r["headers"]["X-Spikes-Event"] ==
                               "spike.resolved"))
    assert resolved["spike"]["resolved"] is True and resolved["spike"]["id"] == spike_id


def test_share_deleted_reaches_the_receiver_after_the_share_is_gone(client, hooked, receiver):
    token = _token(client)
    assert call(client, "DELETE", f"/shares/{hooked['share_id']}", token=token)[0] == 200
    _deliver()
    [request] = receiver.requests
    assert request["headers"]["X-Spikes-Event"] == "share.deleted"
    assert verify(hooked["webhook_secret"], request["headers"]["X-Spikes-Signature"], request["body"])
    assert json.loads(request["body"])["share"]["id"] == hooked["share_id"]


def test_a_deleted_share_sends_nothing_to_a_webhook_removed_before(client, hooked, receiver):
    # The owner removed the webhook (pending events are cancelled), then deleted the share before
    # the job came by: the pending event went to the removed URL, feedback and all (finding 171).
    receiver.answers = [500]
    _post_spike(client, hooked, "private feedback")
    _deliver()
    token = _token(client)
    assert call(client, "PATCH", f"/shares/{hooked['share_id']}", {"webhook_url": ""}, token=token)[0] == 200
    assert call(client, "DELETE", f"/shares/{hooked['share_id']}", token=token)[0] == 200
    _deliver(time.time() + 3600)
    assert len(receiver.requests) == 1  # the first, failed attempt only
    [event] = Delivery.share_index.query(hooked["share_id"])
    assert (event.status, event.last_error) == ("cancelled", "not sent: the share was deleted after its webhook was removed")


def test_a_deleted_share_sends_its_pending_events_where_its_webhook_pointed_last(client, hooked, receiver):
    moved_to = Receiver()
    try:
        receiver.answers = [500]
        _post_spike(client, hooked, "private feedback")
        _deliver()
        token = _token(client)
        status, body, _ = call(client, "PATCH", f"/shares/{hooked['share_id']}", {"webhook_url": moved_to.url},
                               token=token)
        assert status == 200, body
        assert call(client, "DELETE", f"/shares/{hooked['share_id']}", token=token)[0] == 200
        _deliver(time.time() + 3600)
        assert len(receiver.requests) == 1  # the old receiver heard nothing more
        assert sorted(r["headers"]["X-Spikes-Event"] for r in moved_to.requests) == ["share.deleted", "spike.created"]
        assert all(verify(body["webhook_secret"], r["headers"]["X-Spikes-Signature"], r["body"], now=time.time() + 3600)
                   for r in moved_to.requests)
    finally:
        moved_to.close()


# --- the receiver check ----------------------------------------------------------------------

def _resolver(mapping):
    def resolve(host, port, proto=0):
        if host not in mapping:
            raise socket.gaierror("no such name")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, proto, "", (a, port))
                for a in mapping[host]]
    return resolve


@pytest.mark.parametrize("url,addresses,reason", [
    ("https://internal.example/hook", ["10.0.0.7"], "non-public"),
    ("https://metadata.example/hook", ["169.254.169.254"], "non-public"),
    ("https://mixed.example/hook", ["93.184.216.34", "192.168.1.10"], "non-public"),
    ("https://v6.example/hook", ["fd00:ec2::254"], "non-public"),
    ("https://local.example/hook", ["127.0.0.1"], "non-public"),
    ("https://cgnat.example/hook", ["100.64.0.1"], "non-public"),
    ("https://127.0.0.1/hook", [], "non-public"),
    ("https://[::ffff:10.0.0.1]/hook", [], "non-public"),
    ("https://gone.example/hook", None, "does not resolve"),
    ("http://public.example/hook", ["93.184.216.34"], "https"),
])
def test_receivers_are_checked_after_dns_resolution(url, addresses, reason):
    mapping = {} if addresses is None else {url.split("/")[2]: addresses}
    with pytest.raises(webhook_sender.UnsafeReceiver, match=reason):
        webhook_sender.resolve_target(url, allow_loopback=False, resolver=_resolver(mapping))
    target = webhook_sender.resolve_target("https://public.example/x?y=1", False, _resolver({"public.example": ["93.184.216.34"]}))
    assert (target.address, target.path, target.host_header) == ("93.184.216.34", "/x?y=1", "public.example")


def test_a_name_rebound_to_a_private_address_is_refused_at_delivery(client, hooked, receiver):
    _post_spike(client, hooked)
    [delivery] = Delivery.share_index.query(hooked["share_id"])
    share = Share.get(f"share#{hooked['share_id']}")
    share.update(actions=[Share.webhook_url.set("https://hooks.example/in")])  # validated back then
    attempt = webhook_delivery.attempt_delivery(deps.settings(), delivery, share, time.time(),
                                  resolver=_resolver({"hooks.example": ["10.1.2.3"]}))
    assert attempt.status_code is None and "refused" in attempt.error and "10.1.2.3" in attempt.error
    assert receiver.requests == []


def test_loopback_is_refused_without_the_test_setting(client, hooked, receiver, env):
    env(WEBHOOK_ALLOW_LOOPBACK="false")
    attempt = webhook_sender.post(deps.settings(), receiver.url, "{}", {})
    assert attempt.status_code is None and "refused" in attempt.error
    assert receiver.requests == []


def test_redirects_are_not_followed_and_answers_are_bounded(client, hooked, receiver, env):
    receiver.answers = [302]
    receiver.location = "http://127.0.0.1:9/elsewhere"
    attempt = webhook_sender.post(deps.settings(), receiver.url, "{}", {})
    assert attempt.status_code == 302 and attempt.error == "redirect not followed" and not attempt.ok
    assert len(receiver.requests) == 1

    receiver.location, receiver.body = None, b"x" * (5 * 1024 * 1024)
    started = time.monotonic()
    attempt = webhook_sender.post(deps.settings(), receiver.url, "{}", {})
    assert attempt.ok and time.monotonic() - started < 3  # stopped reading after the bound

    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="1")
    receiver.body, receiver.delay = b"slow", 3
    started = time.monotonic()
    attempt = webhook_sender.post(deps.settings(), receiver.url, "{}", {})
    assert attempt.status_code is None and "Timeout" in attempt.error and time.monotonic() - started < 2.5


def test_redirects_when_allowed_are_checked_hop_by_hop(client, hooked, receiver, env):
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_MAX_REDIRECTS="2")
    receiver.answers = [307]
    receiver.location = "https://internal.example/steal"
    attempt = webhook_sender.post(deps.settings(), receiver.url, "{}", {}, resolver=_resolver({"internal.example": ["10.0.0.5"]}))
    assert attempt.status_code is None and "non-public" in attempt.error


def test_loopback_setting_is_refused_in_aws_stages(monkeypatch):
    from chalicelib.settings import Settings
    with pytest.raises(ValueError, match="WEBHOOK_ALLOW_LOOPBACK"):
        Settings(stage="prod", secret_key="x" * 40, webhook_allow_loopback=True)


def test_outbox_and_delivery_on_both_engines(backend_client, env, receiver):
    """The outbox write, the sparse due index, the claim condition and the finish, on moto and
    on DynamoDB Local (Amazon's engine)."""
    from tests.conftest import sign_in
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    token = sign_in(backend_client, "owner@example.com")
    make_pro("owner@example.com")
    share = share_site(backend_client, token, "Engines", webhook_url=receiver.url)
    receiver.answers = [500]
    _post_spike(backend_client, share)
    start = time.time()
    assert _deliver(start).retrying == 1
    [first_view] = Delivery.share_index.query(share["share_id"])
    [second_view] = Delivery.share_index.query(share["share_id"])
    assert deliveries.claim(first_view, int(start), 60)
    assert not deliveries.claim(second_view, int(start), 60)  # two runs saw it: one wins
    assert _deliver(start + 3600).delivered == 1
    assert [(d.status, d.due, d.attempts) for d in Delivery.share_index.query(share["share_id"])] == \
        [("delivered", None, 3)]
    assert list(Delivery.due_index.query("due")) == []
    assert verify(share["webhook_secret"], receiver.requests[-1]["headers"]["X-Spikes-Signature"],
                  receiver.requests[-1]["body"], now=int(receiver.requests[-1]["headers"]["X-Spikes-Signature"][2:12]))


def test_a_webhook_adds_no_round_trip_to_posting_a_spike(client, user_token, env, receiver, monkeypatch):
    """The event rides in the spike's transaction: the same DynamoDB calls with or without it."""
    from botocore.client import BaseClient
    env(WEBHOOK_ALLOW_LOOPBACK="true")
    make_pro("owner@example.com")
    plain = share_site(client, user_token, "Plain")
    hooked = share_site(client, user_token, "Hooked", webhook_url=receiver.url)
    calls: List[str] = []
    original = BaseClient._make_api_call

    def counting(self, operation, params):
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return original(self, operation, params)
    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    counts = {}
    for share in (plain, hooked, plain, hooked):  # the second round: warm
        calls.clear()
        _post_spike(client, share)
        counts[share["slug"]] = list(calls)
    assert counts[plain["slug"]] == counts[hooked["slug"]]
    assert "TransactWriteItems" in counts[hooked["slug"]]
    assert receiver.requests == []


def test_a_webhook_changed_in_another_function_applies_to_the_next_post(backend_client, env, receiver):
    """A warm function caches the share a post goes to; the post's transaction checks the
    webhook it cached (URL and signing nonce) is still the share's, so a webhook set, re-keyed or
    removed elsewhere (another Lambda: no cache of this one is dropped) applies at once."""
    from tests.conftest import sign_in
    env(WEBHOOK_ALLOW_LOOPBACK="true")
    token = sign_in(backend_client, "owner@example.com")
    make_pro("owner@example.com")
    share = share_site(backend_client, token, "Elsewhere")
    stored = Share.get(f"share#{share['share_id']}")

    def queued():
        return [(d.url, d.secret_nonce) for d in Delivery.share_index.query(share["share_id"])]

    _post_spike(backend_client, share)  # warm: the share (without a webhook) is cached
    assert queued() == []
    stored.update(actions=[Share.webhook_url.set(receiver.url), Share.webhook_secret_nonce.set("n1")])
    _post_spike(backend_client, share)
    assert queued() == [(receiver.url, "n1")]
    stored.update(actions=[Share.webhook_secret_nonce.set("n2")])
    _post_spike(backend_client, share)
    assert sorted(queued()) == [(receiver.url, "n1"), (receiver.url, "n2")]
    stored.update(actions=[Share.webhook_url.remove(), Share.webhook_secret_nonce.remove()])
    _post_spike(backend_client, share)
    assert len(queued()) == 2  # removed: the post queues nothing
    status, listed, _ = call(backend_client, "GET", f"/spikes?project={share['slug']}")
    assert status == 200 and len(listed["data"]) == 4  # every post was stored once


def test_the_scheduled_function_delivers(client, hooked, receiver, env):
    """The function AWS runs every minute (invoked the way Lambda would; the test client gives
    it 3 s, so attempts are bounded to 1 s here to fit)."""
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="1")
    from tests.test_usage import SCHEDULE_EVENT
    _post_spike(client, hooked)
    result = client.lambda_.invoke("webhook_deliveries", SCHEDULE_EVENT)
    assert result.payload["delivered"] == 1, result.payload
    assert receiver.requests[-1]["headers"]["X-Spikes-Event"] == "spike.created"


@pytest.mark.parametrize("url, shown", [
    ("https://hooks.example.com/services/T0/B0/secret-token", "https://hooks.example.com/…"),
    ("https://user:pass@hooks.example.com:8443/x?token=s", "https://hooks.example.com:8443/…"),
    ("https://[2001:db8::1]/hook", "https://[2001:db8::1]/…"),
])
def test_the_pause_mail_names_the_receiver_by_scheme_and_host_only(url, shown):
    assert webhook_urls.shown_in_mail(url) == shown

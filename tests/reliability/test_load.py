"""Load: mixed traffic on the real local server (tools/devserver.py on DynamoDB Local) for a
bounded time (``RELIABILITY_LOAD_SECONDS``, 120 by default), then nothing lost or miscounted.

Workers send what the clients send, with many reviewer and client ids and from many addresses
(each connection from its own loopback address, seen as such by the local server; the per-address
spike and password limits are lifted so that the counts below are what the workers chose): widget posts with their own ids to a public, a protected, a webhook-carrying and a
free-tier capped share and to a bare project key (some re-posted, as a retrying widget does),
listings paged by cursor, share pages (protected ones with the password), exports, uploads and
deletions of shares, resolutions, signed Stripe events, usage and share listings. The server's
own delivery loop sends the outbound webhooks to a receiver here, and the quota job runs in a
thread meanwhile. Afterwards:

- no answer was a 5xx;
- every spike answered 201 is listed exactly once by paging its project, and stored once;
- the capped share accepted exactly its limit; every share's count, the owners' usage and the
  stored counters equal what was accepted;
- every Stripe event is recorded and the newest applied; every spike.created and
  spike.resolved event reached the receiver.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Dict, List

import pytest
import requests

from chalicelib import deps
from chalicelib.services import quota_reset
from chalicelib.services.accounts import user_id_for
from chalicelib.store import ledger as ledger_keys
from chalicelib.store.models import User
from tests.fakes.stripe_events import WEBHOOK_SECRET, event, signed, subscription
from tests.live import LiveServer, SourceAddressAdapter
from tests.reliability import summary
from tests.reliability.invariants import Store, lost_spikes, problems
from tests.test_outbound_webhooks import Receiver
from tests.test_shares import INDEX, multipart

LOAD_SECONDS = float(os.environ.get("RELIABILITY_LOAD_SECONDS", "120"))
WORKERS = 8
CAP = 40
PASSWORD = "load-test-password"
PAYER = "payer@example.com"
SITE = [("files", "index.html", INDEX), ("files", "css/site.css", b"h1 { color: teal }")]
WEIGHTS = {"post": 45, "repost": 4, "list": 12, "view": 10, "upload": 3, "delete": 2, "resolve": 5,
           "stripe": 4, "account": 6, "export": 2}


def address_of(worker: int, connection: int) -> str:
    return f"127.0.{worker + 1}.{connection + 1}"


class Traffic:
    """What the workers sent and what they were answered (shared, under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.server_errors: List[str] = []
        self.statuses: Counter = Counter()
        self.by_request: Counter = Counter()
        self.accepted: Dict[str, str] = {}           # spike id -> project it was posted to
        self.capped_attempts = 0
        self.uploaded: List[str] = []
        self.deleted: List[str] = []
        self.resolved: set = set()
        self.stripe: List[dict] = []
        self.created = int(time.time()) - 7200

    def answered(self, what: str, response: requests.Response) -> requests.Response:
        with self.lock:
            self.sent += 1
            self.statuses[response.status_code] += 1
            self.by_request[(what, response.status_code)] += 1
            if response.status_code >= 500:
                self.server_errors.append(f"{what} -> {response.status_code} {response.text[:200]}")
            # A rate limit says when to come back; a usage limit (SPIKE_LIMIT) lasts the period.
            if response.status_code == 429 and not response.headers.get("Retry-After", "").isdigit() \
                    and response.json().get("code") != "SPIKE_LIMIT":
                self.server_errors.append(f"{what} -> 429 {response.text[:120]} without Retry-After")
        return response


@pytest.fixture
def load_server(dynamodb_local_endpoint, monkeypatch):
    if dynamodb_local_endpoint is None:
        pytest.skip("DynamoDB Local disabled (--no-dynamodb-local)")
    prefix = f"load{uuid.uuid4().hex[:8]}-"
    server = LiveServer(dynamodb_endpoint=dynamodb_local_endpoint, persist=False, env={
        "TABLE_PREFIX": prefix, "WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_LOCAL_INTERVAL_SECONDS": "1",
        "WEBHOOK_TIMEOUT_SECONDS": "3", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "FREE_SPIKE_LIMIT": str(CAP),
        "RATE_SHARES_PER_MINUTE": "1000", "RATE_LOGIN_PER_IP": "1000", "RATE_VERIFY_PER_MINUTE": "1000",
        "RATE_SIGN_IN_MAILS_PER_HOUR": "100000", "RATE_SPIKES_PER_MINUTE": "100000",
        "RATE_PASSWORD_PER_MINUTE": "100000", "RATE_PASSWORD_PER_SHARE_PER_MINUTE": "100000",
        "RATE_EXPORTS_PER_MINUTE": "100000", "RATE_LISTINGS_PER_MINUTE": "100000",
        "RATE_SHARE_LISTINGS_PER_MINUTE": "100000", "LOG_LEVEL": "WARNING"})
    server.start()
    try:
        # This process reads and writes the same stage directly: the quota job, the checks.
        emulator = server.wait_for_output(r"AWS emulator at (http://[0-9.:]+)").group(1)
        for name, value in {"STAGE": "local", "TABLE_PREFIX": prefix, "DYNAMODB_ENDPOINT_URL": dynamodb_local_endpoint,
                            "AWS_ENDPOINT_URL": emulator, "MAIL_MODE": "console", "JOB_PAGE_SIZE": "1"}.items():
            monkeypatch.setenv(f"SPIKES_{name}", value)
        deps.reset()
        deps.settings()  # binds the models to this stage
        yield server
    finally:
        server.close()
        monkeypatch.undo()
        deps.reset()


def _upload(session, url: str, token: str, name: str, **metadata) -> dict:
    content_type, body = multipart([("metadata", None, json.dumps({"name": name, **metadata}).encode()),
                                    *SITE])
    response = session.post(f"{url}/shares", data=body, timeout=60,
                            headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    return response.json()


def _page_all(session, url: str, project: str, headers: dict) -> List[str]:
    ids, cursor = [], None
    for _ in range(1000):
        query = f"project={project}&limit=100" + (f"&cursor={cursor}" if cursor else "")
        response = session.get(f"{url}/spikes?{query}", headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        ids += [spike["id"] for spike in response.json()["data"]]
        cursor = response.json()["next_cursor"]
        if not cursor:
            return ids
    raise AssertionError("paging never ended")


def test_mixed_traffic_on_the_local_server_loses_and_miscounts_nothing(load_server):
    server = load_server
    url = server.url
    receiver = Receiver()
    setup = requests.Session()
    pro_token, free_token = server.sign_in("pro@example.com", setup), server.sign_in("free@example.com", setup)
    User.get(user_id_for("pro@example.com")).update(actions=[User.tier.set("pro")])
    User(user_id_for(PAYER), email=PAYER, tier="free", created_at="2026-01-01T00:00:00Z",
         stripe_customer_id="cus_payer").save()
    shares = {
        "open": _upload(setup, url, pro_token, "Open"),
        "vault": _upload(setup, url, pro_token, "Vault", password=PASSWORD),
        "hooked": _upload(setup, url, pro_token, "Hooked", webhook_url=receiver.url),
        "capped": _upload(setup, url, free_token, "Capped"),
    }
    projects = {name: share["slug"] for name, share in shares.items()}
    projects["loose"] = f"loose-{uuid.uuid4().hex[:6]}"
    # Posted as the widget posts: a protected share by its id (by slug it takes its owner's posts only).
    post_keys = {**projects, "vault": shares["vault"]["share_id"]}
    traffic = Traffic()
    stop = threading.Event()
    job_failures: List[str] = []
    job_runs = [0]

    def quota_job() -> None:
        days = 0
        while not stop.wait(4.0):
            try:  # today's pass, then earlier days' sweeps and earlier months' passes: real work each time
                quota_reset.run(deps.settings(), now=datetime.now(timezone.utc) - timedelta(days=days))
                job_runs[0] += 1
            except Exception as exc:  # noqa: BLE001 - reported below
                job_failures.append(repr(exc))
            days += 1

    def worker(number: int) -> None:
        rng = random.Random(number)
        sessions = [requests.Session(), requests.Session()]  # two keep-alive connections per worker
        for number_in_worker, session in enumerate(sessions):
            session.mount("http://", SourceAddressAdapter(address_of(number, number_in_worker)))
        auth = {"Authorization": f"Bearer {pro_token}"}
        mine: List[str] = []
        kinds, weights = zip(*WEIGHTS.items())
        sent = 0
        while not stop.is_set():
            http = sessions[sent % len(sessions)]
            sent += 1
            kind = rng.choices(kinds, weights)[0]
            if kind == "post" or (kind == "repost" and not mine):
                target = rng.choice(list(projects))
                spike_id = uuid.uuid4().hex[:21]
                response = traffic.answered("POST /spikes", http.post(f"{url}/spikes", timeout=60, json={
                    "type": rng.choice(["page", "element"]), "projectKey": post_keys[target], "id": spike_id,
                    "comments": f"load {number}", "rating": rng.choice(["love", "like", "meh", "no"]),
                    "reviewer": {"id": f"rev{number}", "name": "Reviewer"}, "page": "index.html"}))
                with traffic.lock:
                    traffic.capped_attempts += target == "capped"
                    if response.status_code == 201:
                        assert response.json()["id"] == spike_id
                        traffic.accepted[spike_id] = target
                if response.status_code == 201:
                    mine.append(spike_id)
            elif kind == "repost":
                spike_id = rng.choice(mine)
                response = traffic.answered("POST /spikes again", http.post(f"{url}/spikes", timeout=60, json={
                    "type": "page", "projectKey": post_keys[traffic.accepted[spike_id]], "id": spike_id}))
                assert response.status_code in (200, 201, 429), response.text
            elif kind == "list":
                target = rng.choice(list(projects))
                headers = {"X-Share-Password": PASSWORD} if target == "vault" else {}
                cursor = None
                for _ in range(3):
                    query = f"project={projects[target]}&limit=20" + (f"&cursor={cursor}" if cursor else "")
                    response = traffic.answered("GET /spikes", http.get(f"{url}/spikes?{query}", headers=headers,
                                                                        timeout=60))
                    cursor = response.json().get("next_cursor") if response.status_code == 200 else None
                    if not cursor:
                        break
                traffic.answered("GET /spikes (owner)", http.get(f"{url}/spikes?limit=50", headers=auth, timeout=60))
            elif kind == "view":
                slug = projects[rng.choice(["open", "vault", "hooked"])]
                traffic.answered("GET /s/", http.get(f"{url}/s/{slug}/?pw={PASSWORD}", timeout=60))
                traffic.answered("GET /s/ asset", http.get(f"{url}/s/{slug}/css/site.css", timeout=60))
            elif kind == "upload":
                content_type, body = multipart([("metadata", None, b'{"name": "Load upload"}'),
                                                *SITE])
                response = traffic.answered("POST /shares", http.post(f"{url}/shares", data=body, timeout=60, headers={
                    "Content-Type": content_type, **auth}))
                if response.status_code == 201:
                    with traffic.lock:
                        traffic.uploaded.append(response.json()["share_id"])
            elif kind == "delete":
                with traffic.lock:
                    victim = traffic.uploaded.pop() if traffic.uploaded else None
                if victim:
                    response = traffic.answered("DELETE /shares", http.delete(f"{url}/shares/{victim}", headers=auth,
                                                                              timeout=60))
                    with traffic.lock:
                        (traffic.deleted if response.status_code == 200 else traffic.uploaded).append(victim)
            elif kind == "resolve":
                hooked = [s for s in mine if traffic.accepted.get(s) == "hooked"]
                if hooked:
                    spike_id = rng.choice(hooked)
                    response = traffic.answered("PATCH /spikes", http.patch(
                        f"{url}/spikes/{spike_id}?project={projects['hooked']}", json={"resolved": True},
                        headers=auth, timeout=60))
                    if response.status_code == 200:
                        with traffic.lock:
                            traffic.resolved.add(spike_id)
            elif kind == "stripe":
                with traffic.lock:
                    traffic.created += 1
                    evt = event("customer.subscription.updated", subscription(
                        rng.choice(["active", "past_due"]), user_id_for(PAYER), sub_id="sub_payer",
                        customer="cus_payer"), traffic.created)
                raw, headers = signed(evt)
                response = traffic.answered("POST /webhooks/stripe", http.post(f"{url}/webhooks/stripe", data=raw,
                                                                              headers=headers, timeout=60))
                if response.status_code == 200:
                    with traffic.lock:
                        traffic.stripe.append(evt)
            elif kind == "account":
                for path in ("/usage", "/shares", "/me"):
                    traffic.answered(f"GET {path}", http.get(f"{url}{path}", headers=auth, timeout=60))
            elif kind == "export":
                traffic.answered("GET /spikes/export", http.get(
                    f"{url}/spikes/export?project={projects['open']}", timeout=60))

    job = threading.Thread(target=quota_job, daemon=True)
    errors: List[BaseException] = []

    def guarded(target):
        def run(*args):
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test below
                errors.append(exc)
                stop.set()
        return run

    threads = [threading.Thread(target=guarded(worker), args=(n,), daemon=True) for n in range(WORKERS)]
    for thread in threads + [job]:
        thread.start()
    stop.wait(LOAD_SECONDS)
    stop.set()
    for thread in threads + [job]:
        thread.join(timeout=120)
    summary.add("requests sent", traffic.sent)
    if errors:
        raise errors[0]
    assert traffic.server_errors == [], "\n".join(traffic.server_errors[:30])
    assert job_failures == [] and job_runs[0] >= 2, job_failures
    assert traffic.statuses[201] > 100, traffic.statuses

    # Every outbound event arrives (the server's delivery loop runs every second).
    hooked_ids = {s for s, target in traffic.accepted.items() if target == "hooked"}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        payloads = [json.loads(r["body"]) for r in list(receiver.requests)]
        created = {p["spike"]["id"] for p in payloads if p["type"] == "spike.created"}
        resolved = {p["spike"]["id"] for p in payloads if p["type"] == "spike.resolved"}
        if hooked_ids <= created and traffic.resolved <= resolved:
            break
        time.sleep(1)
    receiver.close()
    assert hooked_ids - created == set() and traffic.resolved - resolved == set()

    # Every accepted spike is listed exactly once by paging its project.
    owner = {"Authorization": f"Bearer {pro_token}"}
    listed = Counter()
    for target, project in projects.items():
        listed.update(_page_all(setup, url, project, owner if target == "vault" else {}))
    accepted = traffic.accepted
    assert [s for s in accepted if listed[s] != 1] == []
    assert [s for s in listed if s not in accepted] == []

    # The capped share took exactly its limit; counts, usage and counters equal what was accepted.
    per_target = Counter(accepted.values())
    if traffic.capped_attempts > CAP:
        assert per_target["capped"] == CAP
    counts = {s["id"]: s.get("spike_count") for token in (pro_token, free_token)
              for s in setup.get(f"{url}/shares", headers={"Authorization": f"Bearer {token}"}, timeout=60).json()}
    for name in ("open", "vault", "hooked", "capped"):
        assert counts[shares[name]["share_id"]] == per_target[name], name
    usage = setup.get(f"{url}/usage", headers=owner, timeout=60).json()
    assert usage["spikes"] == per_target["open"] + per_target["vault"] + per_target["hooked"]
    store = Store.in_process()
    # Every caller's address had its own rate-limit bucket.
    addresses = {address_of(number, k) for number in range(WORKERS) for k in range(2)}
    assert {a for a in addresses if ledger_keys.rate_limit_key("spikes", a) not in store.ledger()} == set()
    found = problems(store)
    assert found == [], "\n".join(found[:30])
    assert lost_spikes(store, list(accepted)) == []
    assert not set(traffic.deleted) & set(store.shares())

    # Every acknowledged Stripe event is recorded, and the newest one is the state.
    ledger = store.ledger()
    assert [e["id"] for e in traffic.stripe if f"stripe-event#{e['id']}" not in ledger] == []
    if traffic.stripe:
        newest = max(traffic.stripe, key=lambda e: e["created"])
        payer = User.get(user_id_for(PAYER), consistent_read=True)
        assert (payer.subscription_event_at, payer.subscription_status) == \
            (newest["created"], newest["data"]["object"]["status"])
    print(f"\nload: {traffic.sent} requests in {LOAD_SECONDS:.0f} s, answers {dict(traffic.statuses)}, "
          f"{sorted(traffic.by_request.items())}, "
          f"{len(accepted)} spikes accepted, {job_runs[0]} quota job runs")

"""The fifth review (docs/security.md, "The fifth review"): outbound webhook deliveries, rate
limit subjects, listing cursors and the quota reset. Each test failed before its fix."""
from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from typing import Iterator

import pytest

from chalicelib import deps
from chalicelib.services import webhook_delivery, webhook_sender
from chalicelib.store import deliveries
from chalicelib.store.models import Delivery, Share
from tests.conftest import call
from tests.test_outbound_webhooks import _deliver, _post_spike, _resolver, hooked, receiver  # noqa: F401 - fixtures
from tests.test_shares import make_pro, share_site


# --- 47. A receiver cannot hold the delivery job past the timeout ------------------------------

class Dripper:
    """A receiver on loopback that sends ``answer`` one byte at a time, each byte well within a
    socket timeout, so the whole answer takes ``len(answer) * gap`` seconds.

    Its accept loop polls (the listener has a timeout) and ``close`` joins its threads before
    closing the listener: closing a listener does not wake a thread blocked in ``accept`` on
    Linux, and a blocked ``accept`` the kernel restarts (the process stopped and continued, or
    frozen, as on a loaded VM) is restarted on the descriptor's number, by then the next test's
    listener (the fake Stripe's): it took that test's connection and dropped it unanswered."""

    def __init__(self, answer: bytes, gap: float = 0.15) -> None:
        self.answer, self.gap = answer, gap
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.port = self.server.getsockname()[1]
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.server.accept()
            except socket.timeout:
                continue
            connection.settimeout(None)
            self.threads.append(threading.Thread(target=self._drip, args=(connection,), daemon=True))
            self.threads[-1].start()

    def _drip(self, connection: socket.socket) -> None:
        with connection:
            try:
                for byte in self.answer:
                    if self.stopped.wait(self.gap):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                pass  # the sender hung up: what the fix does

    def close(self) -> None:
        self.stopped.set()
        self.threads[0].join(timeout=5)  # then no thread is added
        for thread in self.threads[1:]:
            thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def dripper() -> Iterator[Dripper]:
    server = Dripper(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: yes\r\n\r\nok")
    yield server
    server.close()


def test_a_closed_dripper_leaves_nothing_accepting_on_its_port(dripper):
    """Once closed, nothing of it accepts connections: no thread of it is left in ``accept``
    (see Dripper), here or on a later test's listener."""
    socket.create_connection(("127.0.0.1", dripper.port), timeout=5).close()
    dripper.close()
    assert not any(thread.is_alive() for thread in dripper.threads)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", dripper.port), timeout=5).close()


def test_a_receiver_dripping_its_answer_is_cut_off_at_the_timeout(env, dripper):
    # Every byte comes long before a read times out; the answer as a whole takes about 8 s.
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="1")
    attempt = webhook_sender.post(deps.settings(), f"http://127.0.0.1:{dripper.port}/hook", "{}", {})
    assert not attempt.ok and attempt.status_code is None
    assert attempt.error.startswith("Timeout"), attempt.error


def _certificate(tmp_path, name: str):
    """A self-signed certificate for ``name``: (certificate file, key file)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "receiver.pem", tmp_path / "receiver.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_receiver(tmp_path, receiver):
    """The loopback receiver behind TLS with a certificate for hooks.example: (url, cert file)."""
    import ssl
    cert_file, key_file = _certificate(tmp_path, "hooks.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    return f"https://hooks.example:{receiver.server.server_address[1]}/hook", cert_file


def test_https_receivers_are_verified_by_name_and_a_dripped_handshake_is_cut_off(env, receiver, tls_receiver,
                                                                                 monkeypatch):
    """The sender's own TLS connection (finding 47): the certificate is checked for the URL's
    name, not the address connected to, and a handshake is bounded like an answer."""
    from chalicelib.services import webhook_sender
    url, cert_file = tls_receiver
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="1")
    resolve = _resolver({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    untrusted = webhook_sender.post(deps.settings(), url, "{}", {}, resolver=resolve)
    assert not untrusted.ok and "CERTIFICATE_VERIFY_FAILED" in untrusted.error, untrusted.error
    monkeypatch.setattr(webhook_sender.certifi, "where", lambda: str(cert_file))
    assert webhook_sender.post(deps.settings(), url, "{}", {}, resolver=resolve).ok
    assert receiver.requests[-1]["headers"]["Host"] == url.split("/")[2]
    wrong_name = webhook_sender.post(deps.settings(), url.replace("hooks.", "other."), "{}", {}, resolver=resolve)
    assert not wrong_name.ok and "CERTIFICATE_VERIFY_FAILED" in wrong_name.error, wrong_name.error

    server = Dripper(b"\x16\x03\x03\x40\x00" + b"\x02" * 60)  # a TLS record header, its body a byte at a time
    try:
        dripped = webhook_sender.post(deps.settings(), f"https://127.0.0.1:{server.port}/hook", "{}", {})
    finally:
        server.close()
    assert not dripped.ok and dripped.error.startswith("Timeout"), dripped.error


# --- 48. One delivery that cannot be sent does not stop the others ----------------------------

def test_a_receiver_with_an_internationalised_name_is_sent_its_ascii_form(client, hooked, receiver):
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://\u4f8b\u3048.example:{port}/h\u00f6\u00f6k?q=\u4e2d"
    attempt = webhook_sender.post(deps.settings(), url, "{}", {}, resolver=_resolver({"\u4f8b\u3048.example": ["127.0.0.1"]}))
    assert attempt.ok, attempt.error
    [request] = receiver.requests
    assert request["headers"]["Host"] == f"xn--r8jz45g.example:{port}"
    assert request["path"] == "/h%C3%B6%C3%B6k?q=%E4%B8%AD"


def test_a_delivery_whose_attempt_crashes_is_retried_and_the_run_goes_on(client, hooked, receiver, monkeypatch):
    first, second = _post_spike(client, hooked, "first"), _post_spike(client, hooked, "second")
    sent = webhook_delivery.attempt_delivery
    crashed = []

    def crash_once(settings, delivery, *args, **kwargs):
        if not crashed:
            crashed.append(delivery.delivery_id)
            raise RuntimeError("a bug met in one delivery")
        return sent(settings, delivery, *args, **kwargs)

    monkeypatch.setattr(webhook_delivery, "attempt_delivery", crash_once)
    now = time.time()
    report = _deliver(now)
    assert (report.attempted, report.delivered, report.retrying) == (2, 1, 1)
    assert len(receiver.requests) == 1
    crashed_delivery = Delivery.get(crashed[0])
    assert crashed_delivery.status == "pending" and crashed_delivery.attempts == 1
    assert crashed_delivery.last_error == "internal error: RuntimeError"
    assert now < crashed_delivery.next_attempt_at <= now + deps.settings().webhook_first_retry_seconds
    # Its next attempt is an ordinary one: both events reach the receiver.
    assert _deliver(now + 3600).delivered == 1
    assert sorted(json.loads(request["body"])["spike"]["id"] for request in receiver.requests) == sorted([first, second])


# --- 49. An IPv6 client cannot escape a per-address limit by changing address -----------------

def test_a_client_address_counts_as_its_ipv6_64_network():
    from chalicelib.services.ratelimit import client_network
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert client_network("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert client_network("203.0.113.5") == client_network("::ffff:203.0.113.5") == "203.0.113.5"
    assert client_network("unknown") == "unknown"


@pytest.fixture
def addresses_of_one_64(monkeypatch, from_network):
    """Every request comes from a new address of the same /64, as API Gateway reports it: what
    a client given one IPv6 address (a VPS, a phone, a home line) can do. What it gives sends
    the following requests from one address instead."""
    from chalicelib.api import inputs
    fresh = itertools.count(1)
    monkeypatch.setattr(inputs, "client_ip", lambda request: f"2001:db8:1:2:{next(fresh):x}::1")
    return from_network


def test_share_passwords_cannot_be_guessed_from_fresh_ipv6_addresses(client, user_token, addresses_of_one_64):
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Guarded", password="open sesame")
    limit = deps.settings().rate_password_per_minute
    for guess in range(limit):
        assert call(client, "GET", f"/s/{share['slug']}/?pw=guess{guess}")[0] == 401
    status, body, _ = call(client, "GET", f"/s/{share['slug']}/?pw=open%20sesame")
    assert status == 429 and body["code"] == "RATE_LIMIT"  # the guesser's network has no tries left
    addresses_of_one_64("2001:db8:9:9::1")  # another network has its own
    assert call(client, "GET", f"/s/{share['slug']}/?pw=open%20sesame")[0] == 200


def test_posting_spikes_from_fresh_ipv6_addresses_shares_one_allowance(client, env, addresses_of_one_64):
    env(RATE_SPIKES_PER_MINUTE="3")
    spike = {"type": "page", "projectKey": "flood", "comments": "x"}
    assert [call(client, "POST", "/spikes", spike)[0] for _ in range(4)] == [201, 201, 201, 429]
    addresses_of_one_64("2001:db8:1:3::1")
    assert call(client, "POST", "/spikes", spike)[0] == 201


def _guarded_share(client, user_token) -> str:
    make_pro("owner@example.com")
    return share_site(client, user_token, "Guarded", password="open sesame")["slug"]


# Every limit kept per client address, driven through its route: (settings, how many requests
# one network is allowed, the request). A request is identified by a number so each is new.
PER_ADDRESS_LIMITS = {
    "login": ({"RATE_LOGIN_PER_IP": "3", "RATE_LOGIN_PER_ADDRESS": "100"}, 3,
              lambda client, n, _: call(client, "POST", "/auth/login", {"email": f"u{n}@example.com"})),
    "recovery": ({"RATE_LOGIN_PER_IP": "3", "RATE_LOGIN_PER_ADDRESS": "100"}, 3,
                 lambda client, n, _: call(client, "POST", "/auth/recover", {"email": f"u{n}@example.com"})),
    "cli poll": ({"RATE_POLL_PER_MINUTE": "3"}, 3,
                 lambda client, n, _: call(client, "GET", f"/auth/poll?email=u{n}@example.com")),
    "device flow": ({}, 10, lambda client, n, _: call(client, "POST", "/auth/device")),
    "sign-in links": ({"RATE_VERIFY_PER_MINUTE": "3"}, 3,
                      lambda client, n, _: call(client, "POST", "/auth/verify", {"login_token": f"guess{n}"})),
    "agent signup": ({"RATE_AGENT_SIGNUP_PER_HOUR": "2"}, 2,
                     lambda client, n, _: call(client, "POST", "/auth/api-key", {})),
    "share password": ({"RATE_PASSWORD_PER_MINUTE": "3"}, 3,
                       lambda client, n, slug: call(client, "GET", f"/s/{slug}/?pw=guess{n}")),
    "spikes": ({"RATE_SPIKES_PER_MINUTE": "3"}, 3, lambda client, n, _: call(
        client, "POST", "/spikes", {"type": "page", "projectKey": "flood", "comments": f"x{n}"})),
}


@pytest.mark.parametrize("limited", sorted(PER_ADDRESS_LIMITS))
def test_every_per_address_limit_counts_an_ipv6_64_once(client, env, user_token, addresses_of_one_64, limited):
    settings, allowed, send = PER_ADDRESS_LIMITS[limited]
    env(**settings)
    slug = _guarded_share(client, user_token) if limited == "share password" else None
    answers = [send(client, n, slug) for n in range(allowed + 1)]
    assert [status == 429 for status, _, _ in answers] == [False] * allowed + [True], answers
    addresses_of_one_64("2001:db8:9:9::1")  # another network has its own allowance
    assert send(client, allowed + 1, slug)[0] != 429


# --- 50. An event held while a webhook was paused is not left held for good --------------------

def _pause(share_id: str) -> None:
    from chalicelib.store import share_webhooks
    assert share_webhooks.pause(Share.get(f"share#{share_id}"), "2026-12-04T00:00:00.000Z", "kept failing")


def test_events_held_while_paused_go_to_the_new_receiver_when_the_url_changes(client, hooked, receiver, user_token):
    _pause(hooked["share_id"])
    spike_id = _post_spike(client, hooked)
    assert _deliver().paused == 1  # held: the owner was mailed to fix the receiver
    # The owner fixes it by pointing the webhook elsewhere, which ends the pause.
    status, body, _ = call(client, "PATCH", f"/shares/{hooked['share_id']}", {"webhook_url": receiver.url + "2"},
                           token=user_token)
    assert status == 200, body
    assert call(client, "GET", f"/shares/{hooked['share_id']}/webhook", token=user_token)[1]["paused"] is False
    assert _deliver().delivered == 1
    [request] = receiver.requests
    assert request["path"] == "/hook2" and json.loads(request["body"])["spike"]["id"] == spike_id


def test_events_held_while_paused_are_cancelled_when_the_url_is_removed(client, hooked, receiver, user_token):
    _pause(hooked["share_id"])
    _post_spike(client, hooked)
    assert _deliver().paused == 1
    assert call(client, "PATCH", f"/shares/{hooked['share_id']}", {"webhook_url": ""}, token=user_token)[0] == 200
    _deliver()
    assert [d.status for d in Delivery.share_index.query(hooked["share_id"])] == ["cancelled"]
    assert receiver.requests == []


def test_a_run_that_read_the_share_before_its_resume_sends_the_event(backend_client, env, receiver):
    """On moto and DynamoDB Local: the delivery job read the share while it was paused, the owner
    resumed (nothing was held yet, so nothing was queued), then the run came to the event."""
    from tests.conftest import sign_in
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="3")
    token = sign_in(backend_client, "owner@example.com")
    make_pro("owner@example.com")
    share = share_site(backend_client, token, "Resumed", webhook_url=receiver.url)
    _pause(share["share_id"])
    _post_spike(backend_client, share)
    now = time.time()
    [delivery] = deliveries.due(int(now), 10)
    runs_view = {share["share_id"]: Share.get(f"share#{share['share_id']}")}  # paused, as the run read it
    status, resumed, _ = call(backend_client, "POST", f"/shares/{share['share_id']}/webhook/resume", token=token)
    assert (status, resumed["queued"], resumed["paused"]) == (200, 0, False)
    assert deliveries.claim(delivery, int(now), webhook_delivery.CLAIM_SECONDS)
    assert webhook_delivery.process(deps.settings(), delivery, now, None, runs_view) == deliveries.DELIVERED
    assert len(receiver.requests) == 1
    assert [d.status for d in Delivery.share_index.query(share["share_id"])] == ["delivered"]

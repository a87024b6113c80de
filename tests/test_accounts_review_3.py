"""Accounts and sign-in, attacked once more (docs/security.md 180-): what a stranger can make the
sign-in mails do, and what the server's mail service can deliver."""
from __future__ import annotations

import re

from tests.conftest import call, sent_mails


def test_an_inboxs_mail_limit_counts_every_spelling_that_reaches_it(client, from_network):
    """The sign-in mails' limit per address counted each spelling apart: `jane+1@`, `jane+2@`, ...
    (and at Gmail `j.ane@`) all land in Jane's inbox, and each took a fresh 5 mails, so a
    stranger with a few networks (each 20 mails a window) filled her inbox without end. The
    spellings of one inbox now share its budget."""
    for inbox, spellings in (("jane@example.com", [f"jane+{n}@example.com" for n in range(5)] + ["JANE+x@example.com"]),
                             ("janedoe@gmail.com", ["jane.doe@gmail.com", "j.a.n.e.doe@googlemail.com", "janedoe+a@gmail.com",
                                                    "Jane.Doe+b@gmail.com", "jan.edoe@gmail.com", "janedoe@gmail.com"])):
        answers, mails_before = [], len(sent_mails())
        for n, address in enumerate(spellings):
            from_network(f"203.0.113.{n + 1}")  # a network of its own each time
            answers.append(call(client, "POST", "/auth/login", {"email": address})[0])
        assert answers == [200] * 5 + [429], (inbox, answers)
        assert len(sent_mails()) - mails_before == 5, inbox
    # Another inbox at the same domain keeps a budget of its own.
    assert call(client, "POST", "/auth/login", {"email": "jake+1@example.com"})[0] == 200


def test_ses_is_sent_an_internationalised_domain_in_ascii_and_a_local_part_it_cannot_take_is_a_400(client):
    """Validation writes an internationalised domain in Unicode (`bücher.de`), and SES, which has
    no SMTPUTF8, takes only ASCII addresses: every sign-in mail of such an account failed at SES,
    a 503 "retry shortly" for good, and so did an address with letters outside ASCII before the
    @. SES is now sent the domain's ASCII form, and an address it cannot take is a 400 before
    anything is counted or stored."""
    from chalicelib.store.models import AuthItem

    for path, body in (("/auth/login", {}), ("/auth/recover", {})):
        before = len(sent_mails())
        status, _, _ = call(client, "POST", path, {"email": "Dev@BÜCHER.de", **body})
        assert status == 200, path
        assert [mail["to"] for mail in sent_mails()[before:]] == [["dev@xn--bcher-kva.de"]], path
    token = re.search(r"/auth/verify\?token=([A-Za-z0-9_\-]+)", sent_mails()[-1]["body"]).group(1)
    status, body, _ = call(client, "POST", "/auth/verify", {"login_token": token})
    assert status == 200 and body["user"]["email"] == "dev@bücher.de"

    stored = AuthItem.count()
    for path, extra in (("/auth/login", {}), ("/auth/recover", {}), ("/auth/device/confirm", {"user_code": "BCDF-GHJK"})):
        before = len(sent_mails())
        status, body, headers = call(client, "POST", path, {"email": "josé@example.com", **extra})
        assert (status, body["code"], body["details"][0]["field"]) == (400, "VALIDATION_ERROR", "email"), (path, body)
        assert "ASCII" in body["details"][0]["message"] and "ASCII" in body["error"]  # what the CLI prints
        assert "X-RateLimit-Remaining" not in headers
        assert len(sent_mails()) == before
    assert AuthItem.count() == stored


def test_the_sign_in_page_names_a_look_alike_domain_in_the_form_that_tells_it_apart(client):
    """163 names the account on a recovery link's button, so a person handed someone else's link
    sees whose dashboard they would sign in to. An internationalised domain was named in Unicode
    only: `jane@аррӏе.com` (Cyrillic, a domain anyone can register) reads as `jane@apple.com`,
    and the button said "Sign in to the dashboard as jane@аррӏе.com". It now adds the ASCII form
    browsers show for such a host, which does not look alike."""
    look_alike = "jane@\u0430\u0440\u0440\u04cf\u0435.com"
    for path in ("/auth/recover", "/auth/login"):
        assert call(client, "POST", path, {"email": look_alike})[0] == 200
        token = re.search(r"/auth/verify\?token=([A-Za-z0-9_\-]+)", sent_mails()[-1]["body"]).group(1)
        page = client.http.get(f"/auth/verify?token={token}")
        assert page.status_code == 200
        shown = f"{look_alike} (jane@xn--80ak6aa92e.com)"
        assert f"<h1>Sign in to Spikes as {shown}</h1>" in page.body.decode(), path
        if path == "/auth/recover":
            assert f"Sign in to the dashboard as {shown}</button>" in page.body.decode()
    page = client.http.get(f"/auth/verify?token={_plain_link(client)}")
    assert "<h1>Sign in to Spikes as plain@example.com</h1>" in page.body.decode()  # an ASCII address as it is


def _plain_link(client) -> str:
    assert call(client, "POST", "/auth/recover", {"email": "plain@example.com"})[0] == 200
    return re.search(r"/auth/verify\?token=([A-Za-z0-9_\-]+)", sent_mails("plain@example.com")[-1]["body"]).group(1)


def test_a_session_in_use_outlives_an_idle_period_of_one_day(client, env):
    """A session's idle expiry is pushed out when it is used, written at most once a day. With
    `SPIKES_SESSION_IDLE_DAYS=1` (the least allowed) a day's wait never came before the expiry:
    a session used every hour still died 24 hours after sign-in. It is now pushed out once half
    the idle period has passed, at most once a day."""
    from datetime import timedelta

    from chalicelib import clock
    from tests.conftest import sign_in

    env(SESSION_IDLE_DAYS="1")
    token = sign_in(client, "daily@example.com")
    base = clock.now()
    try:
        for hours in (13, 26, 39):  # used every 13 hours: never idle for a day
            clock.use(lambda h=hours: base + timedelta(hours=h))
            assert call(client, "GET", "/me", token=token)[0] == 200, hours
        clock.use(lambda: base + timedelta(hours=39 + 25))  # then idle for more than a day
        status, body, _ = call(client, "GET", "/me", token=token)
        assert (status, body["code"]) == (401, "AUTH_FAILED")
    finally:
        clock.use(None)


def test_a_deployed_stage_left_on_the_console_mailer_prints_no_sign_in_link(client, monkeypatch, capsys):
    """`SPIKES_MAIL_MODE` defaults to `console`, which prints each mail, link and all. A stage
    deployed without `ses` (anything but infra/stack.py) printed every sign-in link into its
    logs, a session for anyone to whoever reads them, and mailed nobody. Outside the local
    stages the console mailer now refuses: 500 CONFIGURATION_ERROR, nothing printed."""
    from chalicelib import deps

    local = deps.settings()
    deployed = local.model_copy(update={"stage": "prod", "mail_mode": "console", "public_base_url": "https://spikes.example",
                                        "table_prefix": local.resource_prefix, "bucket": local.bucket_name})
    monkeypatch.setattr("chalicelib.settings.get_settings", lambda: deployed)
    deps.mailer.cache_clear()
    try:
        capsys.readouterr()
        for path, extra in (("/auth/login", {}), ("/auth/recover", {}), ("/auth/device/confirm", {"user_code": "BCDF-GHJK"})):
            status, body, _ = call(client, "POST", path, {"email": "a@example.com", **extra})
            assert (status, body["code"]) == (500, "CONFIGURATION_ERROR"), (path, body)
        assert "/auth/verify?token=" not in capsys.readouterr().out
    finally:
        monkeypatch.undo()  # before the client's teardown resets the settings' cache
        deps.mailer.cache_clear()

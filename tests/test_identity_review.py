"""The identity review (docs/security.md, "The ninth review: sign-in, sessions and keys"): magic
links, the device flow, sessions, API keys and the request middleware. Each test failed before
its fix."""
from __future__ import annotations

import unicodedata
from urllib.parse import quote

from tests.conftest import call, login_token_from_mail


# --- The CLI's e-mail poll finds its sign-in however the address was written -------------------

def test_the_cli_email_poll_finds_a_sign_in_whose_address_validation_rewrote(client):
    """`POST /auth/login` stores the poll under the address as validation writes it (an IDNA
    domain in Unicode, NFC), the poll looked it up as the CLI sent it: `spikes login --email`
    with such an address waited five minutes for a 404, however the person approved."""
    # SES is handed the domain's ASCII form; the account keeps the address as validated.
    for typed, mailed, account in (("dev@xn--bcher-kva.de", "dev@xn--bcher-kva.de", "dev@bücher.de"),
                                   ("dev@" + unicodedata.normalize("NFD", "café.fr"), "dev@xn--caf-dma.fr", "dev@café.fr")):
        status, _, _ = call(client, "POST", "/auth/login", {"email": typed})
        assert status == 200, typed
        status, body, _ = call(client, "GET", f"/auth/poll?email={quote(typed)}")
        assert (status, body["verified"]) == (202, False), (typed, body)
        status, _, _ = call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail(mailed),
                                                             "approve": True})
        assert status == 200, typed
        status, body, _ = call(client, "GET", f"/auth/poll?email={quote(typed)}")
        assert status == 200 and body["verified"] and body["user"]["email"] == account, (typed, body)


# --- The device page is not an oracle for live user codes ---------------------------------------

def test_the_device_page_does_not_let_a_client_try_user_codes_without_end(client):
    """The device page describes a live user code (time and address it came from) and says
    nothing of others, without any limit: a client could try codes until it found a live one, and
    approve that device with its own account (the victim's CLI then signs in, and uploads, as the
    attacker). Lookups of a code are now limited per client network, like confirming one."""
    _, device, _ = call(client, "POST", "/auth/device")
    answers = [client.http.get(f"/auth/device?code=BCDF-{'GHJK' if n % 2 else 'GHJL'}") for n in range(12)]
    limited = [page for page in answers if page.status_code == 429]
    assert limited, [page.status_code for page in answers]
    assert limited[0].headers["Retry-After"].isdigit()
    page = client.http.get(f"/auth/device?code={device['user_code']}")
    assert page.status_code == 429 and b"was requested" not in page.body
    assert client.http.get("/auth/device").status_code == 200  # the page itself, without a code, is not counted

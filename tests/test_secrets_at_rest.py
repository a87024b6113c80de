"""No token, key, password or unlock secret is stored in clear (docs/security.md): exercise
every flow that creates one, then scan every table (tests may scan) for any of them."""
from __future__ import annotations

import re


from tests.conftest import ADMIN_TOKEN, call, login_token_from_mail
from tests.test_serving import access_root, cookie_from, get
from tests.test_shares import INDEX, make_pro, share_site


def _all_items() -> list:
    from chalicelib import deps
    from chalicelib.store.models import ALL_MODELS
    client = deps.dynamodb_client()
    items = []
    for model in ALL_MODELS:
        pages = client.get_paginator("scan").paginate(TableName=model.Meta.table_name)
        items += [item for page in pages for item in page["Items"]]
    return items


def test_a_scan_of_every_table_finds_no_secret_in_clear(client):
    secrets = {"admin token": ADMIN_TOKEN}
    # Magic link: the login token, the poll token and the session it gives.
    _, login, _ = call(client, "POST", "/auth/login", {"email": "secretive@example.com"})
    secrets["poll token"] = login["poll_token"]
    secrets["login token"] = login_token_from_mail("secretive@example.com")
    _, verified, _ = call(client, "POST", "/auth/verify", {"login_token": secrets["login token"], "approve": True})
    secrets["session"] = verified["token"]
    _, polled, _ = call(client, "GET", f"/auth/poll?poll_token={login['poll_token']}")
    secrets["polled session"] = polled["token"]
    _, rotated, _ = call(client, "POST", "/auth/rotate-token", token=polled["token"])
    secrets["rotated session"] = rotated["token"]
    # Device flow: the device code and the session it gives.
    _, device, _ = call(client, "POST", "/auth/device")
    secrets["device code"] = device["device_code"]
    call(client, "POST", "/auth/device/confirm", {"user_code": device["user_code"], "email": "secretive@example.com"})
    call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("secretive@example.com"), "approve": True})
    _, done, _ = call(client, "GET", f"/auth/device/poll?device_code={device['device_code']}")
    secrets["device session"] = done["token"]
    # An API key.
    status, key, _ = call(client, "POST", "/auth/api-key", {"name": "ci"}, token=verified["token"])
    assert status == 201, key
    secrets["api key"] = key["api_key"]
    # A password-protected share, its password and the unlock secrets it hands out.
    make_pro("secretive@example.com")
    password = "correct horse battery staple"
    body = share_site(client, verified["token"], "Vault", files=[("index.html", INDEX)], password=password)
    secrets["share password"] = password
    status, page, headers = get(client, f"/s/{body['slug']}/?pw=correct%20horse%20battery%20staple")
    assert status == 200
    secrets["unlock cookie"] = cookie_from(headers).split("=", 1)[1]
    secrets["access path token"] = access_root(page).rstrip("/").rsplit("~u.", 1)[1]
    call(client, "GET", f"/spikes?project={body['slug']}", headers={"X-Share-Password": password})

    items = _all_items()
    assert len(items) > 10
    dump = repr(items)
    found = [name for name, value in secrets.items() if value in dump]
    assert found == [], f"stored in clear: {found}"
    # What is stored instead: SHA-256 hashes as keys, an argon2 hash for the password.
    keys = [item.get("pk", {}).get("S", "") for item in items]
    assert any(re.fullmatch(r"bearer#[0-9a-f]{64}", k) for k in keys)
    assert any(re.fullmatch(r"login#[0-9a-f]{64}", k) for k in keys)
    assert any(re.fullmatch(r"device#[0-9a-f]{64}", k) for k in keys)
    hashes = [item["password_hash"]["S"] for item in items if "password_hash" in item]
    assert hashes and all(h.startswith("$argon2") for h in hashes)

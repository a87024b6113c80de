"""Isolation: two owners, every route, each trying every id, slug and key of the other.

Each owner has a public share with a webhook (so deliveries exist), a password-protected share,
a pending presigned upload, spikes on each share and under a project key of their own, and an
API key. Then each owner, with a session and with a full-scope API key, sends every method of
every route with each of the other's identifiers in every path and query variable, with a body
that would change something if it were obeyed. Checked:

- no cross-tenant read: no 2xx from a route that serves an owner's objects, and no private
  marker of the other owner (protected page, private comments, names, e-mail, webhook URL) in
  any answer;
- no cross-tenant write: every stored item and object of the other owner is unchanged;
- no existence oracle: each answer equals (status and error code) the answer to the same
  request with an identifier of the same shape that exists nowhere.

By design and by the contract, share pages (``/s/<slug>/``) are public, and so are the spike
listings of a public share (``GET /spikes?project=<slug>``). A protected share's page answers
its password form, so its existence is public too, and its listing answers strangers 404 where
a project key nobody used answers an empty list. Those answers are checked for private markers
only, not for existence.
"""
from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


from chalicelib.store.models import Delivery
from tests.conftest import call, sign_in
from tests.reliability import summary
from tests.reliability.invariants import Store
from tests.test_hostile_inputs import _routes
from tests.test_shares import make_pro, share_site, start_presigned

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
HOSTILE_BODY = {"resolved": True, "name": "taken over", "password": "", "webhook_url": "", "comments": "x",
                "scopes": "full", "approve": True}
OWNER_ROUTES = re.compile(r"^/(shares/\{key\}|spikes/\{spike_id\}|auth/api-key/\{key_id\})")
# Logging out or rotating would end the actor's own session and make every later answer a 401.
SESSION_ENDERS = ("/auth/logout", "/auth/rotate-token")
QUERY_NAMES = ("project", "key", "id", "share", "share_id", "slug", "user_id", "key_id", "delivery_id")


@dataclass
class Owner:
    email: str
    token: str
    api_key: str
    mark: str
    user_id: str
    values: Dict[str, str] = field(default_factory=dict)  # kind -> identifier
    private: List[str] = field(default_factory=list)      # strings no one else may ever read


def _owner(client, email: str) -> Owner:
    token = sign_in(client, email)
    make_pro(email)
    mark = secrets.token_hex(6)
    _, me, _ = call(client, "GET", "/me", token=token)
    status, key, _ = call(client, "POST", "/auth/api-key", {"name": f"iso {mark}", "scopes": "full"}, token=token)
    assert status == 201, key
    owner = Owner(email, token, key["api_key"], mark, me.get("id") or me.get("user_id"))
    public = share_site(client, token, f"Public {mark}", files=[("index.html", f"<p>public {mark}</p>".encode())],
                        webhook_url=f"http://127.0.0.1:9/hook-{mark}")
    vault = share_site(client, token, f"Vault {mark}", files=[("index.html", f"<p>vault-page-{mark}</p>".encode())],
                       password=f"pw-{mark}")
    status, pending, _ = start_presigned(client, token, [{"path": "index.html", "size": 10, "content_type": "text/html"}],
                                         name=f"Pending {mark}")
    assert status == 201, pending
    ids = {}
    for kind, project, comments, auth in (("public spike", public["slug"], f"public comment {mark}", None),
                                          ("vault spike", vault["share_id"], f"vault-comment-{mark}", None),  # as its widget does
                                          ("own spike", f"own-{mark}", f"own-comment-{mark}", token)):
        status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": project, "comments": comments,
                                                           "id": f"{kind[:3]}{mark}{uuid.uuid4().hex[:8]}"}, token=auth)
        assert status == 201, body
        ids[kind] = body["id"]
    [delivery] = [d.delivery_id for d in Delivery.share_index.query(public["share_id"])][:1]
    owner.values = {
        "public share id": public["share_id"], "public slug": public["slug"],
        "vault share id": vault["share_id"], "vault slug": vault["slug"],
        "pending share id": pending["share_id"], "pending slug": pending["slug"],
        **ids, "own project key": f"own-{mark}", "key id": key["key_id"], "delivery id": delivery,
        "user id": owner.user_id,
    }
    owner.private = [f"vault-page-{mark}", f"vault-comment-{mark}", f"own-comment-{mark}", f"Vault {mark}",
                     f"Pending {mark}", f"hook-{mark}", f"pw-{mark}", email, key["api_key"]]
    return owner


def _lookalike(value: str) -> str:
    """An identifier of the same shape that exists nowhere."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0234567"
    prefix = re.match(r"^(sh_|spk_|key_|dlv_|own-|evt_)?", value).group(0)
    rest = value[len(prefix):]
    fake = "".join(secrets.choice(alphabet) if c.isalnum() else c for c in rest)
    return prefix + (fake.lower() if rest.islower() else fake)


def _fill(route: str, value: str) -> Optional[str]:
    if "{" not in route:
        return None
    route = re.sub(r"/\{p\d+\}", "", route)  # /s/{slug}/{p1}... : one depth stands for the rest
    return re.sub(r"\{[^}]+\}", value, route)


def _answer(client, method: str, path: str, credential: Dict[str, str]) -> Tuple[int, Optional[str], str]:
    body = json.dumps(HOSTILE_BODY) if method != "GET" else None
    response = client.http.request(method, path, headers={"Content-Type": "application/json", **credential},
                                   body=body)
    text = (response.body or b"").decode("utf-8", "replace")
    code = None
    try:
        data = json.loads(text)
        code = data.get("code") if isinstance(data, dict) else None
    except ValueError:
        pass
    return response.status_code, code, text


def _owned_by(owner: Owner, store: Store) -> Dict[str, str]:
    """Every stored item and object of ``owner``, as comparable text."""
    markers = [owner.user_id] + [v for k, v in owner.values.items() if "share id" in k]
    # A background export is its starter's (services/background_exports.py), whatever project it
    # names: another owner exporting a public project named by this owner's ids writes nothing of his.
    others_exports = {}
    for item in store.items.get("ledger", []):
        if str(item.get("pk", "")).startswith("export#"):
            detail = json.loads(item["detail"])
            if detail.get("requester", {}).get("user") != owner.user_id:
                others_exports[item["pk"]] = detail["key"]
    out = {}
    for logical, items in store.items.items():
        for item in items:
            if logical == "ledger" and str(item.get("pk", "")).startswith("rl#"):
                continue  # rate-limit windows count every caller's requests
            if logical == "ledger" and item.get("pk") in others_exports:
                continue
            text = repr(sorted(item.items()))
            if any(marker in text for marker in markers):
                out[f"{logical}:{text[:120]}"] = text
    for key in store.objects:
        if any(key == kept or key.startswith(kept + ".held-") for kept in others_exports.values()):
            continue
        if any(marker in key for marker in markers):
            out[f"s3:{key}"] = key
    return out


def _strip_volatile(items: Dict[str, str]) -> Dict[str, str]:
    # When a key was last used changes as its owner uses it: not a write by the other owner.
    return {k: re.sub(r"'last_used_at', '[^']*'", "", v) for k, v in items.items()}


def test_two_owners_cannot_read_write_or_detect_each_others_objects(app_client, env):
    env(WEBHOOK_ALLOW_LOOPBACK="true")
    from app import app
    client = app_client
    alice, bob = _owner(client, "alice@example.com"), _owner(client, "bob@example.com")
    routes = sorted({(m, r) for m, r in _routes(app) if m in METHODS})
    reads, leaks, oracles, writes, tried = [], [], [], [], 0
    for actor, victim in ((alice, bob), (bob, alice)):
        # What the actor's own requests create (keys, shares) is theirs: only the victim's is compared.
        before = _strip_volatile(_owned_by(victim, Store.in_process()))
        for credential in ({"Authorization": f"Bearer {actor.token}"}, {"X-API-Key": actor.api_key}):
            for method, route in routes:
                if route.startswith(("/{p1}", "/docs", "/dashboard")) or route in SESSION_ENDERS:
                    continue  # pages and the 404 fallback name no one's objects; see SESSION_ENDERS
                if "X-API-Key" in credential and not (OWNER_ROUTES.match(route) or route.startswith("/spikes")):
                    continue  # keys reach a subset of what sessions reach: the routes naming objects
                for kind, value in victim.values.items():
                    paths = []
                    filled = _fill(route, value)
                    if filled is not None:
                        paths.append((filled, _fill(route, _lookalike(value))))
                    else:
                        query = "&".join(f"{name}={value}" for name in QUERY_NAMES)
                        fake = _lookalike(value)
                        paths.append((f"{route}?{query}", f"{route}?" + "&".join(f"{n}={fake}" for n in QUERY_NAMES)))
                    for path, control in paths:
                        status, code, text = _answer(client, method, path, credential)
                        tried += 1
                        where = f"{actor.email} {method} {path} ({kind})"
                        if OWNER_ROUTES.match(route) and 200 <= status < 300:
                            reads.append(f"{where} -> {status}")
                        found = [secret for secret in victim.private if secret in text]
                        if found:
                            leaks.append(f"{where} -> {status} shows {found}")
                        public_by_design = route.startswith("/s/") or (
                            route in ("/spikes", "/spikes/export", "/exports") and ("slug" in kind or "share id" in kind))
                        if not public_by_design:
                            control_status, control_code, _ = _answer(client, method, control, credential)
                            tried += 1
                            if (control_status, control_code) != (status, code):
                                oracles.append(f"{where} -> {status} {code}, unknown id -> {control_status} {control_code}")

        assert call(client, "GET", "/me", token=actor.token)[0] == 200  # the probe ran signed in throughout
        after = _strip_volatile(_owned_by(victim, Store.in_process()))
        writes += [f"{actor.email} changed {key}" for key in set(before) ^ set(after)]

    summary.add("cross-tenant reads", len(reads) + len(leaks))
    summary.add("cross-tenant writes", len(writes))
    assert tried > 2000
    assert reads == [], "\n".join(reads[:30])
    assert leaks == [], "\n".join(leaks[:30])
    assert writes == [], "\n".join(writes[:30])
    assert oracles == [], "\n".join(oracles[:30])

    # The owners still reach all of their own (the probe was not just refused wholesale).
    for owner in (alice, bob):
        for kind in ("public share id", "vault slug", "pending share id"):
            assert call(client, "GET", f"/shares/{owner.values[kind]}", token=owner.token)[0] == 200, kind
        for kind in ("public spike", "vault spike", "own spike"):
            assert call(client, "GET", f"/spikes/{owner.values[kind]}", token=owner.token)[0] == 200, kind

"""The second security review (docs/security.md, "Second review"): each test failed before its
fix. In-process, with the chalice test client and moto, like the first review's tests."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.services import webhook_sender
from chalicelib.store.models import Share, User
from tests.conftest import call, sign_in
from tests.factories import change_pro_features
from tests.test_agent_signup import signup
from tests.test_outbound_webhooks import _resolver, hooked, receiver  # noqa: F401 - fixtures
from tests.test_serving import get, site
from tests.test_shares import make_pro, share_site, start_presigned


# --- 14. Only a full key claims its account ---------------------------------------------------

def test_a_narrower_key_cannot_claim_its_key_only_account(client):
    created = signup(client)[1]
    full_key = created["api_key"]
    share = share_site(client, full_key, name="agent work")
    # The agent hands a read-only key to a reviewer (or leaks it in a CI log).
    read_key = call(client, "POST", "/auth/api-key", {"name": "reader", "scopes": "read"}, token=full_key)[1]["api_key"]
    spikes_key = call(client, "POST", "/auth/api-key", {"scopes": "spikes:write"}, token=full_key)[1]["api_key"]

    thief = sign_in(client, "thief@example.com")
    for narrow in (read_key, spikes_key):
        status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": narrow}, token=thief)
        assert (status, body["code"], body["required_scope"]) == (403, "SCOPE_DENIED", "full"), body
    # Nothing moved: the account, its share and its keys are still the agent's.
    assert User.get(created["account_id"]).merged_into is None
    assert Share.get(f"share#{share['share_id']}").owner_id == created["account_id"]
    assert call(client, "GET", "/shares", token=thief)[1] == []
    status, me, _ = call(client, "GET", "/me", token=full_key)
    assert status == 200 and me["claimable"] is True

    # The full key still claims it.
    human = sign_in(client, "claimer@example.com")
    status, body, _ = call(client, "POST", "/auth/link-key", {"api_key": full_key}, token=human)
    assert status == 200 and body["moved"]["shares"] == 1


# --- 15. Webhooks cannot reach private addresses through IPv6 forms that embed IPv4 ----------

# Python's ipaddress calls all of these global; each leads to the IPv4 address it carries
# (an AWS NAT gateway translates NAT64 addresses, private VPC ones included).
EMBEDDED_PRIVATE = [
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254, the instance metadata service
    "64:ff9b::a00:7",  # NAT64 of 10.0.0.7
    "64:ff9b:1::a00:7",  # a local-use NAT64 prefix (RFC 8215)
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "::a00:7",  # IPv4-compatible 10.0.0.7
    "::ffff:0:a00:7",  # IPv4-translated (SIIT) 10.0.0.7 (finding 173)
    "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
    "fec0::7",  # site-local, deprecated but still routed as local by some networks (finding 173)
]


@pytest.mark.parametrize("address", EMBEDDED_PRIVATE)
def test_ipv6_forms_of_private_ipv4_addresses_are_refused_at_delivery(address):
    with pytest.raises(webhook_sender.UnsafeReceiver, match="non-public"):
        webhook_sender.resolve_target("https://rebound.example/hook", False, _resolver({"rebound.example": [address]}))


def test_a_nat64_form_of_a_public_address_is_still_allowed():
    target = webhook_sender.resolve_target("https://v6only.example/hook", False,
                               _resolver({"v6only.example": ["64:ff9b::5db8:d822"]}))  # 93.184.216.34
    assert target.address == "64:ff9b::5db8:d822"


@pytest.mark.parametrize("address", EMBEDDED_PRIVATE)
def test_ipv6_forms_of_private_ipv4_addresses_are_refused_when_set(client, user_token, address):
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Hook me")
    status, body, _ = call(client, "PATCH", f"/shares/{share['share_id']}",
                           {"webhook_url": f"https://[{address}]/hook"}, token=user_token)
    assert (status, body["code"]) == (400, "VALIDATION_ERROR"), body
    assert body["details"][0]["code"] == "INVALID_WEBHOOK_URL"
    assert Share.get(f"share#{share['share_id']}").webhook_url is None


# --- 16. No XML document is ever rendered on S3's origin --------------------------------------

# Extensions whose type (from the extension table) is an XML type: browsers render any
# "...+xml" type as an XML document, and XHTML elements in it run script.
XML_DOCUMENTS = ["feed.rss", "feed.atom", "style.xsl", "data.rdf", "formula.mml", "page.xht"]


def test_large_xml_documents_of_any_xml_type_are_refused_at_upload(client, user_token, env):
    env(MAX_SERVED_FILE_BYTES="1000")
    for path in XML_DOCUMENTS:
        status, data, _ = start_presigned(client, user_token, [{"path": "index.html", "size": 10},
                                                               {"path": path, "size": 5000}])
        assert (status, data["code"]) == (413, "SIZE_LIMIT"), path


def test_large_xml_documents_already_stored_are_handed_out_only_as_downloads(client, user_token, env):
    evil = b'<rss xmlns:h="http://www.w3.org/1999/xhtml"><h:script>alert(document.domain)</h:script>' + b" " * 2000
    body = site(client, user_token, files=[("index.html", b"<h1>Hi</h1>")] + [(path, evil) for path in XML_DOCUMENTS])
    env(MAX_SERVED_FILE_BYTES="1000")  # lowered after they were stored: uploads refuse them above it
    for path in XML_DOCUMENTS:
        status, _, headers = get(client, f"/s/{body['slug']}/{path}")
        assert status == 302, path
        query = parse_qs(urlsplit(headers["Location"]).query)
        assert query.get("response-content-disposition") == ["attachment"], path
        assert query.get("response-content-type") == ["application/octet-stream"], path


# --- 17. A webhook's delivery log refuses a non-ASCII limit with a 400, not a 500 -------------

@pytest.mark.parametrize("limit", ["\u00b2", "\u0661\u0662", "9" * 5000])
def test_the_delivery_log_limit_takes_ascii_digits_only(client, hooked, user_token, limit):  # noqa: F811
    from urllib.parse import quote
    status, body, _ = call(client, "GET", f"/shares/{hooked['share_id']}/webhook/deliveries?limit={quote(limit)}",
                           token=user_token)
    assert (status, body["code"]) == (400, "VALIDATION_ERROR"), body
    assert call(client, "GET", f"/shares/{hooked['share_id']}/webhook/deliveries?limit=5", token=user_token)[0] == 200


# --- 18. Refusals under /s/ are sandboxed like the share's files ------------------------------

def test_every_refusal_under_a_share_path_carries_the_sandbox_headers(client, user_token):
    from chalicelib.store.models import User as UserModel
    from tests.test_serving import protected
    from tests.test_shares import user_of
    public = site(client, user_token)
    locked = protected(client, user_token)
    refusals = {
        f"/s/{public['slug']}/missing.html": 404,  # no such file
        "/s/no-such-share/": 404,  # no such share
        f"/s/{public['slug']}/~u.1.forged/index.html": 404,  # an access segment on a public share
        f"/s/{locked['slug']}/css/site.css": 401,  # a protected share's asset, no proof
        f"/s/{locked['slug']}/css/site.css?pw=wrong": 401,  # a wrong password
    }
    for path, expected in refusals.items():
        status, _, headers = get(client, path)
        assert status == expected, path
        assert headers.get("Content-Security-Policy", "").startswith("sandbox"), path
        assert headers.get("X-Content-Type-Options") == "nosniff", path
    UserModel(user_of("owner@example.com").user_id).update(actions=[UserModel.tier.set("free")])
    owner_id = user_of("owner@example.com").user_id
    change_pro_features(owner_id, lock=True)
    status, _, headers = get(client, f"/s/{locked['slug']}/")
    assert status == 403 and headers.get("Content-Security-Policy", "").startswith("sandbox")


# --- 19. Reviewers' addresses need spikes:read -------------------------------------------------

def test_an_owners_key_without_spikes_read_does_not_see_reviewers_emails(client, user_token):
    share = share_site(client, user_token, "Survey")
    reviewer = {"id": "r-1", "name": "Jane", "email": "jane@example.com"}
    assert call(client, "POST", "/spikes", {"type": "page", "projectKey": share["share_id"], "comments": "hi",
                                            "reviewer": reviewer})[0] == 201

    def key_with(scopes: str) -> str:
        return call(client, "POST", "/auth/api-key", {"scopes": scopes}, token=user_token)[1]["api_key"]

    for scopes in ("usage:read", "shares:write keys:manage"):
        key = key_with(scopes)
        status, body, _ = call(client, "GET", f"/spikes?project={share['share_id']}", token=key)
        assert status == 200 and body["data"][0]["reviewer"] == {"id": "r-1", "name": "Jane"}, scopes
        csv = client.http.get(f"/spikes/export?project={share['share_id']}&format=csv",
                              headers={"Authorization": f"Bearer {key}"}).body.decode()
        assert "Jane" in csv and "jane@example.com" not in csv, scopes
    reader = key_with("spikes:read")
    status, body, _ = call(client, "GET", f"/spikes?project={share['share_id']}", token=reader)
    assert status == 200 and body["data"][0]["reviewer"] == reviewer
    assert call(client, "GET", f"/spikes?project={share['share_id']}", token=user_token)[1]["data"][0]["reviewer"] \
        == reviewer


# --- 20. A multipart boundary longer than the parser takes is a 400 ---------------------------

def test_an_overlong_multipart_boundary_is_a_400_not_a_500(client, user_token):
    status, body, _ = call(client, "POST", "/shares", raw=b"--x\\r\\n", token=user_token,
                           headers={"Content-Type": "multipart/form-data; boundary=" + "-" * 300})
    assert (status, body["code"]) == (400, "VALIDATION_ERROR"), body
    assert body["details"][0]["code"] == "INVALID_MULTIPART"

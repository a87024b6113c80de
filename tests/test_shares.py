"""POST/GET/DELETE /shares: multipart uploads, presigned uploads, slugs, limits, refusals."""
from __future__ import annotations

import json
import re
import socket
import uuid
from datetime import datetime, timedelta
from typing import Iterable, List, Optional, Sequence, Tuple

import pytest
import requests

from chalicelib import deps
from chalicelib.store import ledger, share_work, spike_counters
from chalicelib.store.shares import SHARE_ID_PATTERN
from chalicelib.store.models import LedgerItem, Share, Spike, User
from tests.factories import queued
from tests.conftest import call, sign_in

# 1x1 transparent PNG, with bytes that are not valid UTF-8 (a corrupted round trip shows).
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082")
INDEX = b"<!doctype html><html><head><link rel=stylesheet href=css/site.css></head><body><h1>Hi</h1></body></html>"

Part = Tuple[str, Optional[str], bytes]  # (field name, file name or None, content)


def multipart(parts: Iterable[Part]) -> Tuple[str, bytes]:
    """A multipart/form-data body as a client writes it. File names go in verbatim (curl
    style), so tests can send exactly the bytes an attacker would."""
    boundary = "----spikes" + uuid.uuid4().hex
    out = bytearray()
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode("utf-8")
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def upload(client, token: Optional[str], files: Sequence[Tuple[str, bytes]] = (("index.html", INDEX),),
           metadata=None, raw_metadata: Optional[bytes] = None, headers: Optional[dict] = None):
    parts: List[Part] = []
    if raw_metadata is not None:
        parts.append(("metadata", None, raw_metadata))
    elif metadata is not None:
        parts.append(("metadata", None, json.dumps(metadata).encode()))
    parts += [("files", name, content) for name, content in files]
    content_type, body = multipart(parts)
    return call(client, "POST", "/shares", token=token, raw=body,
                headers={"Content-Type": content_type, **(headers or {})})


def share_site(client, token: str, name: str = "My Site", files=None, **metadata) -> dict:
    status, body, _ = upload(client, token, files or [("index.html", INDEX)], {"name": name, **metadata})
    assert status == 201, body
    return body


def user_of(token_email: str) -> User:
    from chalicelib.services.accounts import user_id_for
    return User.get(user_id_for(token_email))


def make_pro(email: str) -> None:
    user_of(email).update(actions=[User.tier.set("pro")])


def s3_keys(prefix: str = "") -> List[str]:
    listing = deps.s3_client().list_objects_v2(Bucket=deps.settings().bucket_name, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def all_items(model) -> list:
    return list(model.scan())  # tests only: requests never scan


# --- creating --------------------------------------------------------------------------------

def test_multi_file_share_with_folders_and_binary_files(client, user_token):
    files = [("index.html", INDEX), ("css\\site.css", b"h1{color:red}"), ("assets/img/logo.png", PNG),
             ("./js/app.js", b"console.log(1)")]
    status, body, _ = upload(client, user_token, files, {"name": "Checkout Flow v2"})
    assert status == 201, body
    assert body["ok"] is True and body["slug"] == "checkout-flow-v2"
    assert SHARE_ID_PATTERN.match(body["share_id"])
    assert body["url"] == f"http://127.0.0.1:8000/s/{body['slug']}"
    keys = sorted(s3_keys(f"shares/{body['share_id']}/"))
    assert keys == sorted(f"shares/{body['share_id']}/{p}" for p in
                          ["index.html", "css/site.css", "assets/img/logo.png", "js/app.js"])
    stored = deps.s3_client().get_object(Bucket=deps.settings().bucket_name,
                                         Key=f"shares/{body['share_id']}/assets/img/logo.png")
    assert stored["Body"].read() == PNG
    share = Share.get(f"share#{body['share_id']}")
    assert share.status == "active" and share.file_count == 4
    assert share.files["css/site.css"] == {"size": 13, "type": "text/css"}
    assert Share.get(f"slug#{body['slug']}").share_id == body["share_id"]
    assert user_of("owner@example.com").active_shares == 1


def test_contract_metadata_slug_and_title(client, user_token):
    status, body, _ = upload(client, user_token, metadata={"slug": "My-Project", "title": "My Project"})
    assert status == 201 and body["slug"] == "my-project"
    assert Share.get(f"share#{body['share_id']}").name == "My Project"


def test_slugs_never_collide_across_users(client, user_token):
    first = share_site(client, user_token, "Landing Page")
    other = sign_in(client, "other@example.com")
    second = share_site(client, other, "Landing Page")
    third = share_site(client, user_token, "landing page!!")
    assert first["slug"] == "landing-page"
    assert second["slug"] == "landing-page-2" and third["slug"] == "landing-page-3"
    assert len({first["share_id"], second["share_id"], third["share_id"]}) == 3
    claims = {Share.get(f"slug#{s['slug']}").share_id for s in (first, second, third)}
    assert claims == {first["share_id"], second["share_id"], third["share_id"]}


def test_slug_is_readable_and_bounded(client, user_token):
    status, body, _ = upload(client, user_token, metadata={"name": "  Ünïcode & Spaces / " + "x" * 80})
    assert status == 201
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", body["slug"]) and len(body["slug"]) <= 48
    assert body["slug"].startswith("unicode-spaces-x")


def test_a_folders_name_the_cli_names_a_share_with_is_taken_whole(client, user_token):
    """``spikes share <dir>`` and the MCP server's create_share send the folder's name as
    ``name`` when given none (docs/clients.md), and a folder's name may be 255 bytes on Linux:
    such a share was refused (400) at 200 characters. Its slug stays 48 characters at most."""
    from chalicelib.api import schemas
    from chalicelib.services import shares
    assert schemas.SHARE_NAME_CHARS == shares.NAME_MAX_CHARS == 255  # what is refused is what is kept
    folder = "checkout-mockup-" + "v" * 239  # 255 bytes, the longest name a Linux folder has
    created = share_site(client, user_token, folder)
    assert Share.get(f"share#{created['share_id']}").name == folder
    assert created["slug"].startswith("checkout-mockup-v") and len(created["slug"]) <= 48
    for field in ("title", "slug"):
        assert upload(client, user_token, metadata={field: folder})[0] == 201
    renamed = "renamed-" + "r" * 247
    status, body, _ = call(client, "PATCH", f"/shares/{created['share_id']}", {"name": renamed}, token=user_token)
    assert status == 200, body
    assert Share.get(f"share#{created['share_id']}").name == renamed
    # Longer than any folder's name: refused as before, the field named.
    for field in ("name", "title", "slug"):
        status, body, _ = upload(client, user_token, metadata={field: folder + "x"})
        assert (status, body["code"], body["details"][0]["field"]) == (400, "VALIDATION_ERROR", field)
    status, body, _ = call(client, "PATCH", f"/shares/{created['share_id']}", {"name": renamed + "x"},
                           token=user_token)
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")


# --- refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize("filename", [
    "../secret.html", "css/../../x.css", "..\\..\\windows\\x.html", "/etc/passwd", "\\\\server\\share\\a.html",
    "C:\\Users\\x\\index.html", "C:index.html", "d:/x.html", "", "   ", "a\x01b.html", "tab\there.css", "css/",
    "a\x7f.html",
])
def test_unsafe_file_names_are_refused(client, user_token, filename):
    status, body, _ = upload(client, user_token, [("index.html", INDEX), (filename, b"x")], {"name": "x"})
    assert (status, body["code"]) == (400, "INVALID_FILENAME"), filename
    assert body["error"]
    assert s3_keys() == [] and all_items(Share) == []


def test_paths_deeper_than_serving_can_route_are_refused(client, user_token):
    deep = "/".join(["d"] * 8) + "/x.css"
    status, body, _ = upload(client, user_token, [("index.html", INDEX), (deep, b"x")], {"name": "x"})
    assert (status, body["code"]) == (400, "INVALID_FILENAME")
    status, body, _ = upload(client, user_token, [("index.html", INDEX), ("/".join(["d"] * 7) + "/x.css", b"x")],
                             {"name": "x"})
    assert status == 201, body


def test_duplicate_paths_are_refused(client, user_token):
    status, body, _ = upload(client, user_token, [("css/a.css", b"1"), ("css\\a.css", b"2")], {"name": "x"})
    assert (status, body["code"]) == (400, "INVALID_FILENAME")


def test_a_path_longer_than_s3_takes_in_utf8_is_refused(client, user_token):
    """S3 keys are at most 1,024 bytes of UTF-8: 409 characters of CJK are 1,211 bytes. Stored
    directly, S3 refused the key and the client was told to retry (503); presigned, every PUT
    failed and the share could never be completed (docs/security.md 102)."""
    long_path = "/".join(["漢" * 100] * 4) + ".html"
    status, body, _ = upload(client, user_token, [("index.html", INDEX), (long_path, b"x")], {"name": "x"})
    assert (status, body["code"]) == (400, "INVALID_FILENAME")
    status, body, _ = start_presigned(client, user_token, [{"path": long_path, "size": 1}])
    assert (status, body["code"]) == (400, "INVALID_FILENAME")
    assert s3_keys() == [] and all_items(Share) == []
    longest = "/".join(["漢" * 82] * 4) + ".html"  # 992 bytes: its keys are within S3's 1,024
    assert upload(client, user_token, [(longest, b"x")], {"name": "x"})[0] == 201


def test_file_names_too_long_together_for_the_share_record_are_refused(client, user_token):
    """The share's record lists its files; DynamoDB takes an item of at most 400 KB. 500 names of
    1,000 bytes were answered 503 "retry shortly", for ever (docs/security.md 102)."""
    names = [f"{number:03d}" + "é" * 496 + ".html" for number in range(500)]
    status, body, _ = upload(client, user_token, [(name, b"") for name in names], {"name": "x"})
    assert (status, body["code"], body["details"][0]["field"]) == (400, "VALIDATION_ERROR", "files")
    assert s3_keys() == [] and all_items(Share) == []


def test_no_files_is_a_validation_error(client, user_token):
    status, body, _ = upload(client, user_token, [], {"name": "empty"})
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "files"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_bad_metadata_json_is_invalid_json(client, user_token, raw):
    status, body, _ = upload(client, user_token, raw_metadata=raw)
    assert (status, body["code"]) == (400, "INVALID_JSON")


def test_metadata_with_wrong_types_is_a_validation_error(client, user_token):
    status, body, _ = upload(client, user_token, metadata={"name": ["not", "a", "string"]})
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "name"


def test_not_multipart_is_refused(client, user_token):
    status, body, _ = call(client, "POST", "/shares", {"name": "x"}, token=user_token)
    assert (status, body["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    content_type, _ = multipart([("metadata", None, b"{}")])
    status, body, _ = call(client, "POST", "/shares", token=user_token, raw=b"--garbage",
                           headers={"Content-Type": content_type})
    assert (status, body["code"], body["details"][0]["code"]) == (400, "VALIDATION_ERROR", "INVALID_MULTIPART")


def test_a_body_cut_off_before_its_closing_boundary_is_refused(client, user_token):
    content_type, body = multipart([("metadata", None, b'{"name": "cut"}'), ("files", "index.html", INDEX)])
    status, error, _ = call(client, "POST", "/shares", token=user_token, raw=body[:-30],
                            headers={"Content-Type": content_type})
    assert (status, error["code"], error["details"][0]["code"]) == (400, "VALIDATION_ERROR", "INVALID_MULTIPART")
    assert s3_keys() == []


def test_upload_needs_a_bearer_token(client):
    status, body, _ = upload(client, None, metadata={"name": "x"})
    assert (status, body["code"]) == (401, "AUTH_REQUIRED")
    status, body, _ = upload(client, "not-a-token", metadata={"name": "x"})
    assert (status, body["code"]) == (401, "AUTH_FAILED")


def test_request_over_the_direct_limit_is_413_with_max_bytes(client, user_token, env):
    env(MAX_DIRECT_UPLOAD_BYTES="2000")
    status, body, _ = upload(client, user_token, [("index.html", INDEX), ("big.png", b"\0" * 2500)], {"name": "x"})
    assert (status, body["code"], body["max_bytes"]) == (413, "SIZE_LIMIT", 2000)
    assert "/shares/uploads" in body["error"]
    assert s3_keys() == []


def test_files_over_the_share_limit_are_413(client, user_token, env):
    env(MAX_SHARE_BYTES="1000")
    status, body, _ = upload(client, user_token, [("a.png", b"\0" * 600), ("b.png", b"\0" * 600)], {"name": "x"})
    assert (status, body["code"], body["max_bytes"]) == (413, "SIZE_LIMIT", 1000)


def test_free_tier_share_limit_is_429_share_limit(client, user_token, env):
    env(FREE_SHARE_LIMIT="2")
    share_site(client, user_token, "one")
    share_site(client, user_token, "two")
    status, body, _ = upload(client, user_token, metadata={"name": "three"})
    assert (status, body["code"]) == (429, "SHARE_LIMIT")
    assert body["upgrade_url"].endswith("/dashboard#/account") and body["limit"] == 2
    assert user_of("owner@example.com").active_shares == 2
    assert len([s for s in all_items(Share) if s.pk.startswith("share#")]) == 2
    assert len(s3_keys()) == 2  # the refused upload left no files behind


def test_share_limit_holds_when_the_pre_check_saw_a_stale_count(client, user_token, env):
    """Two uploads racing past the pre-check: the transaction's condition still refuses."""
    from chalicelib.limit_errors import ShareLimit
    from chalicelib.services import share_creation
    from chalicelib.services.uploads import UploadedFile
    env(FREE_SHARE_LIMIT="1")
    stale_user = user_of("owner@example.com")  # active_shares == 0, as both racers saw it
    share_site(client, user_token, "winner")
    files = [UploadedFile("index.html", INDEX, "text/html")]
    with pytest.raises(ShareLimit):
        share_creation.create_share(deps.settings(), deps.share_files(), stale_user, share_creation.ShareOptions(name="loser"),
                                    files, "http://x")
    assert user_of("owner@example.com").active_shares == 1
    assert [s.slug for s in all_items(Share) if s.pk.startswith("share#")] == ["winner"]
    assert len(s3_keys()) == 1


def test_pro_user_has_no_share_limit(client, user_token, env):
    env(FREE_SHARE_LIMIT="1")
    make_pro("owner@example.com")
    share_site(client, user_token, "one")
    share_site(client, user_token, "two")


@pytest.mark.parametrize("metadata", [{"password": "hunter2"}, {"webhook_url": "https://93.184.216.34/hook"}])
def test_pro_features_from_a_free_user_are_403(client, user_token, metadata):
    status, body, _ = upload(client, user_token, metadata={"name": "x", **metadata})
    assert (status, body["code"]) == (403, "UPGRADE_REQUIRED")
    assert all_items(Share) == []


def test_pro_user_may_set_password_and_public_webhook(client, user_token):
    make_pro("owner@example.com")
    body = share_site(client, user_token, "secret", password="hunter2", webhook_url="https://93.184.216.34/hook")
    share = Share.get(f"share#{body['share_id']}")
    assert share.webhook_url == "https://93.184.216.34/hook"
    assert share.password_hash.startswith("$argon2") and "hunter2" not in share.password_hash


@pytest.mark.parametrize("url", [
    "http://93.184.216.34/hook", "https://127.0.0.1/x", "https://10.1.2.3/x", "https://192.168.0.10/x",
    "https://169.254.169.254/latest/meta-data", "https://[::1]/x", "https://[fe80::1]/x", "https://0.0.0.0/x",
    "https://[::ffff:127.0.0.1]/x", "https://user:pw@93.184.216.34/x", "ftp://93.184.216.34/x", "not a url",
    "https://internal.example/x", "https://does-not-resolve.invalid/x",
])
def test_unsafe_webhook_urls_are_refused(client, user_token, monkeypatch, url):
    make_pro("owner@example.com")
    real = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host == "internal.example":  # a public name pointing at a private address
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    status, body, _ = upload(client, user_token, metadata={"name": "x", "webhook_url": url})
    assert (status, body["code"]) == (400, "VALIDATION_ERROR"), url
    assert body["details"][0]["field"] == "webhook_url"


def test_webhook_host_resolving_to_public_addresses_is_accepted(client, user_token, monkeypatch):
    make_pro("owner@example.com")
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))])
    share_site(client, user_token, "hooked", webhook_url="https://hooks.example.com/spikes")


def test_more_than_ten_uploads_a_minute_is_429_rate_limit(client, user_token):
    make_pro("owner@example.com")
    for number in range(10):
        status, body, headers = upload(client, user_token, metadata={"name": f"s{number}"})
        assert status == 201, body
        assert int(headers["X-RateLimit-Remaining"]) == 9 - number
    status, body, headers = upload(client, user_token, metadata={"name": "eleven"})
    assert (status, body["code"]) == (429, "RATE_LIMIT")
    assert body["retry_after"] >= 1 and int(headers["Retry-After"]) >= 1
    other = sign_in(client, "other@example.com")
    assert upload(client, other, metadata={"name": "other"})[0] == 201  # per token, not global


# --- presigned uploads (large shares) ------------------------------------------------------

def start_presigned(client, token, files, **metadata):
    return call(client, "POST", "/shares/uploads", {"name": "Big Mockup", **metadata, "files": files}, token=token)


def test_presigned_upload_of_a_share_too_large_for_one_request(client, user_token):
    big = bytes(range(256)) * (20 * 1024)  # 5 MiB: past the direct limit
    files = {"index.html": INDEX, "img\\hero.png": big}
    status, body, _ = start_presigned(client, user_token, [
        {"path": path, "size": len(data), "content_type": "image/png"} for path, data in files.items()])
    assert status == 201, body
    assert body["status"] == "pending" and SHARE_ID_PATTERN.match(body["share_id"])
    assert [u["path"] for u in body["uploads"]] == ["index.html", "img/hero.png"]
    # Pending shares are not served, but they count against the limit.
    assert call(client, "GET", f"/s/{body['slug']}/")[0] == 404
    assert user_of("owner@example.com").active_shares == 1

    for target, data in zip(body["uploads"], files.values()):
        assert target["method"] == "PUT"
        response = requests.put(target["url"], data=data, headers=target["headers"], timeout=10)
        assert response.status_code == 200, response.text

    status, done, _ = call(client, "POST", f"/shares/{body['share_id']}/complete", token=user_token)
    assert status == 200, done
    assert (done["ok"], done["slug"], done["share_id"]) == (True, body["slug"], body["share_id"])
    assert Share.get(f"share#{body['share_id']}").status == "active"
    status, _, headers = call(client, "GET", f"/s/{body['slug']}/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")


def test_completing_with_missing_or_wrong_sized_files_is_refused(client, user_token):
    status, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)},
                                                           {"path": "a.css", "size": 10}])
    assert status == 201
    requests.put(body["uploads"][1]["url"], data=b"12345", headers=body["uploads"][1]["headers"], timeout=10)
    status, error, _ = call(client, "POST", f"/shares/{body['share_id']}/complete", token=user_token)
    assert (status, error["code"]) == (400, "VALIDATION_ERROR")
    assert {d["field"]: d["code"] for d in error["details"]} == {"index.html": "MISSING_UPLOAD",
                                                                  "a.css": "SIZE_MISMATCH"}
    assert Share.get(f"share#{body['share_id']}").status == "pending"


def test_presigned_upload_refusals(client, user_token, env):
    env(MAX_SHARE_BYTES=str(50 * 1024 * 1024))
    status, body, _ = start_presigned(client, user_token, [{"path": "a.png", "size": 51 * 1024 * 1024}])
    assert (status, body["code"], body["max_bytes"]) == (413, "SIZE_LIMIT", 50 * 1024 * 1024)
    status, body, _ = start_presigned(client, user_token, [{"path": "../a.png", "size": 1}])
    assert (status, body["code"]) == (400, "INVALID_FILENAME")
    status, body, _ = start_presigned(client, user_token, [])
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    status, body, _ = start_presigned(client, user_token, [{"path": "a.png", "size": 1}], password="x")
    assert (status, body["code"]) == (403, "UPGRADE_REQUIRED")
    assert all_items(Share) == []


def test_only_the_owner_completes_an_upload(client, user_token):
    _, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": 1}])
    other = sign_in(client, "other@example.com")
    status, error, _ = call(client, "POST", f"/shares/{body['share_id']}/complete", token=other)
    assert (status, error["code"]) == (404, "NOT_FOUND")


def _run_share_job(client, after: Optional[timedelta] = None, at: Optional[datetime] = None) -> dict:
    """The share_deletions scheduled function, run now, ``after`` from now or ``at`` (its calls
    are checked against its own role)."""
    from chalicelib import clock
    from tests.test_usage import SCHEDULE_EVENT
    moment = at or (clock.now() + after if after is not None else None)
    if moment is None:
        return client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload
    clock.use(lambda: moment)
    try:
        return client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload
    finally:
        clock.use(None)


def test_a_presigned_upload_never_completed_is_removed_a_day_later(client, user_token):
    """A pending share nobody can open must not hold a place in its owner's share limit for
    ever: the share_deletions job removes it (and what was uploaded) a day after it started."""
    status, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)},
                                                           {"path": "a.css", "size": 10}])
    assert status == 201, body
    requests.put(body["uploads"][0]["url"], data=INDEX, headers=body["uploads"][0]["headers"], timeout=10)
    assert s3_keys(f"uploads/{body['share_id']}/") and user_of("owner@example.com").active_shares == 1

    # The answer says until when it may be completed: a day after it started.
    created = datetime.fromisoformat(Share.get(f"share#{body['share_id']}").created_at.replace("Z", "+00:00"))
    deadline = datetime.fromisoformat(body["complete_before"].replace("Z", "+00:00"))
    assert deadline - created == timedelta(hours=24)
    # An agent that lost the answer finds the deadline on the share; a live share has none.
    listed = {item["id"]: item for item in call(client, "GET", "/shares", token=user_token)[1]}
    assert listed[body["share_id"]]["complete_before"] == body["complete_before"]
    assert call(client, "GET", f"/shares/{body['share_id']}", token=user_token)[1]["complete_before"] == \
        body["complete_before"]
    other = sign_in(client, "other@example.com")
    live = share_site(client, other, "Live")
    assert "complete_before" not in call(client, "GET", f"/shares/{live['share_id']}", token=other)[1]
    nothing = {"unfinished_uploads_expired": 0, "unfinished_uploads_kept": 0, "unfinished_uploads_failed": 0}
    assert nothing.items() <= _run_share_job(client).items()
    assert nothing.items() <= _run_share_job(client, at=deadline - timedelta(minutes=1)).items()  # may still be completed
    assert Share.get(f"share#{body['share_id']}").status == "pending"

    result = _run_share_job(client, at=deadline + timedelta(seconds=1))
    assert result["unfinished_uploads_expired"] == 1 and result["unfinished_uploads_failed"] == 0, result
    # Its record went; its slug's claim is retired, kept for its owner.
    assert sorted(s.pk for s in all_items(Share)) == [f"share#{live['share_id']}", f"slug#{body['slug']}", "slug#live"]
    assert Share.get(f"slug#{body['slug']}").share_id is None
    assert s3_keys(f"uploads/{body['share_id']}/") == [] and s3_keys(f"shares/{body['share_id']}/") == []
    assert user_of("owner@example.com").active_shares == 0
    _run_share_job(client, at=deadline + timedelta(minutes=16))  # its look once no completion can run (222)
    assert queued(share_work.PRESIGNED_UPLOADS) == [] and queued(share_work.DELETIONS) == []
    status, error, _ = call(client, "POST", f"/shares/{body['share_id']}/complete", token=user_token)
    assert (status, error["code"]) == (404, "NOT_FOUND")
    assert nothing.items() <= _run_share_job(client, timedelta(hours=25)).items()
    assert share_site(client, user_token, "Big Mockup")["slug"] == body["slug"]  # the owner's again


def test_a_completed_presigned_upload_is_left_alone_by_the_job(client, user_token):
    _, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    requests.put(body["uploads"][0]["url"], data=INDEX, headers=body["uploads"][0]["headers"], timeout=10)
    assert queued(share_work.PRESIGNED_UPLOADS)
    assert call(client, "POST", f"/shares/{body['share_id']}/complete", token=user_token)[0] == 200
    assert queued(share_work.PRESIGNED_UPLOADS) == []  # forgotten at completion
    # A marker whose forgetting failed is forgotten by the job, and the share stays.
    share_work.record_upload(share_work.PRESIGNED_UPLOADS, share_work.upload_marker(body["share_id"], 0), 0)
    result = _run_share_job(client, timedelta(days=2))
    assert (result["unfinished_uploads_expired"], result["unfinished_uploads_failed"]) == (0, 0), result
    assert queued(share_work.PRESIGNED_UPLOADS) == []
    assert Share.get(f"share#{body['share_id']}").status == "active"
    assert call(client, "GET", f"/s/{body['slug']}/")[0] == 200


def test_an_unfinished_upload_that_received_feedback_is_kept(client, user_token):
    _, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    status, created, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": body["share_id"],
                                                          "comments": "seen before completion"})
    assert status == 201, created
    result = _run_share_job(client, timedelta(days=2))
    assert (result["unfinished_uploads_kept"], result["unfinished_uploads_expired"]) == (1, 0), result
    assert Share.get(f"share#{body['share_id']}").status == "pending"
    assert queued(share_work.PRESIGNED_UPLOADS) == []  # its owner decides: not looked at again
    status, listed, _ = call(client, "GET", f"/spikes?project={body['share_id']}", token=user_token)
    assert status == 200, listed
    assert [s["id"] for s in listed["data"]] == [created["id"]]


def test_a_completion_racing_the_expiry_is_refused_not_half_deleted(client, user_token):
    from chalicelib.store import share_tombstones
    from chalicelib.store import shares as share_store
    _, body, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}])
    requests.put(body["uploads"][0]["url"], data=INDEX, headers=body["uploads"][0]["headers"], timeout=10)
    real_activate = share_store.activate

    def expired_just_before(share, locked=False, also=None):  # the job's tombstone lands between publish and activate
        share_tombstones.tombstone_unfinished(share_store.get_by_id(share.share_id))
        return real_activate(share, locked, also)
    share_store.activate = expired_just_before
    try:
        status, error, _ = call(client, "POST", f"/shares/{body['share_id']}/complete", token=user_token)
    finally:
        share_store.activate = real_activate
    assert (status, error["code"]) == (404, "NOT_FOUND")
    assert Share.get(f"share#{body['share_id']}").status == "deleting"
    assert queued(share_work.DELETIONS) == [body["share_id"]]  # the job finishes it
    # And a share completed first is not expired.
    _, other, _ = start_presigned(client, user_token, [{"path": "index.html", "size": len(INDEX)}], name="Other")
    requests.put(other["uploads"][0]["url"], data=INDEX, headers=other["uploads"][0]["headers"], timeout=10)
    stale = share_store.get_by_id(other["share_id"])
    assert call(client, "POST", f"/shares/{other['share_id']}/complete", token=user_token)[0] == 200
    with pytest.raises(share_tombstones.NoLongerPending):
        share_tombstones.tombstone_unfinished(stale)
    assert Share.get(f"share#{other['share_id']}").status == "active"


def test_old_markers_are_reached_however_many_young_ones_there_are(client, user_token):
    from chalicelib import clock
    from chalicelib.services import share_cleanup
    now, age = clock.epoch(), 24 * 3600
    for number in range(5):
        marker = share_work.upload_marker(f"sh_young{number:07d}", now - 60)
        share_work.record_upload(share_work.PRESIGNED_UPLOADS, marker, now - 60 + age)
    share_work.record_upload(share_work.PRESIGNED_UPLOADS, share_work.upload_marker("sh_zzzzzzzzzzzz", now - 3 * age),
                             now - 2 * age)
    share_cleanup.expire_unfinished_uploads(deps.share_files(), now, 900, limit=1)
    assert len(queued(share_work.PRESIGNED_UPLOADS)) == 5
    assert all("young" in m for m in queued(share_work.PRESIGNED_UPLOADS))


def test_unfinished_uploads_an_earlier_version_listed_are_moved_and_handled_when_old_enough(client, user_token):
    """After an upgrade, the markers the version before left in the ledger's set are moved into
    the queue, their start kept: the old one is handled, the young ones wait their day."""
    from chalicelib import clock
    from chalicelib.services import share_cleanup
    from tests.factories import legacy_work
    now = clock.epoch()
    legacy_work("uploads#presigned", *[f"sh_young{number:07d}@{int(now) - 60}" for number in range(5)],
                f"sh_zzzzzzzzzzzz@{int(now) - 3 * 24 * 3600}")
    share_cleanup.expire_unfinished_uploads(deps.share_files(), now, 900, limit=1)
    assert ledger.members("uploads#presigned") == []
    assert queued(share_work.PRESIGNED_UPLOADS) == [f"sh_young{number:07d}@{int(now) - 60}" for number in range(5)]
    assert share_cleanup.expire_unfinished_uploads(deps.share_files(), now + 24 * 3600,
                                                   900)["unfinished_uploads_failed"] == 0
    assert queued(share_work.PRESIGNED_UPLOADS) == []


# --- listing and reading -------------------------------------------------------------------

def test_list_shares_is_a_bare_array_with_spike_counts(client, user_token):
    first = share_site(client, user_token, "First")
    second = share_site(client, user_token, "Second")
    share_site(client, sign_in(client, "other@example.com"), "Not Mine")
    LedgerItem(spike_counters.share_total_key(second["share_id"]), count=3).save()
    status, listed, _ = call(client, "GET", "/shares", token=user_token)
    assert status == 200 and isinstance(listed, list)
    by_id = {item["id"]: item for item in listed}
    assert set(by_id) == {first["share_id"], second["share_id"]}
    item = by_id[second["share_id"]]
    assert (item["slug"], item["name"], item["url"], item["spike_count"]) == ("second", "Second", second["url"], 3)
    assert by_id[first["share_id"]]["spike_count"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", item["created_at"])


def test_list_shares_needs_a_user(client):
    assert call(client, "GET", "/shares")[1]["code"] == "AUTH_REQUIRED"


def test_get_share_by_slug_or_id_for_the_owner_only(client, user_token):
    body = share_site(client, user_token, "Mine")
    for key in (body["slug"], body["share_id"]):
        status, share, _ = call(client, "GET", f"/shares/{key}", token=user_token)
        assert status == 200, share
        assert (share["id"], share["slug"], share["url"]) == (body["share_id"], body["slug"], body["url"])
        assert share["exported_spikes"] == [] and share["spike_count"] == 0
    other = sign_in(client, "other@example.com")
    for method in ("GET", "DELETE"):
        for key in (body["slug"], body["share_id"], "no-such-share"):
            status, error, _ = call(client, method, f"/shares/{key}", token=other)
            assert (status, error["code"]) == (404, "NOT_FOUND"), (method, key)
    assert Share.get(f"share#{body['share_id']}").owner_id == user_of("owner@example.com").user_id


# --- deleting --------------------------------------------------------------------------------

def test_delete_exports_spikes_and_leaves_nothing_behind(client, user_token):
    keep = share_site(client, user_token, "Keep", files=[("index.html", INDEX)])
    body = share_site(client, user_token, "Doomed", files=[("index.html", INDEX), ("assets/a.png", PNG)])
    for number, project in enumerate([body["slug"], body["share_id"], keep["share_id"]]):
        status, posted, _ = call(client, "POST", "/spikes", {
            "id": f"client-spike-{number}", "type": "page", "projectKey": project, "page": "/",
            "rating": "love", "comments": f"note {number}", "reviewer": {"id": "r1", "name": "Jane"}})
        assert status in (200, 201), posted

    status, share, _ = call(client, "GET", f"/shares/{body['slug']}", token=user_token)
    assert share["spike_count"] == 2 and len(share["exported_spikes"]) == 2

    status, deleted, _ = call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)
    assert status == 200, deleted
    assert deleted["ok"] is True
    assert sorted(s["comments"] for s in deleted["exported_spikes"]) == ["note 0", "note 1"]

    assert s3_keys(f"shares/{body['share_id']}/") == []
    assert s3_keys(f"shares/{keep['share_id']}/") != []
    assert not [s for s in all_items(Share) if body["share_id"] in (s.share_id, s.pk)]
    assert not [s for s in all_items(Spike) if s.share_id == body["share_id"] or s.partition == body["share_id"]]
    assert not [i for i in all_items(LedgerItem) if body["share_id"] in i.pk]
    assert [s.partition for s in all_items(Spike)] == [keep["share_id"]]
    assert user_of("owner@example.com").active_shares == 1
    assert call(client, "GET", f"/s/{body['slug']}/")[0] == 404
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 404


def test_a_share_too_big_to_delete_in_one_answer_is_answered_and_finished_by_the_job(client, user_token, monkeypatch):
    """A request deletes spikes for REQUEST_DELETION_SECONDS and then answers: deleting 30,000
    took minutes on make dev, and API Gateway ends an answer at 29 s. The share is gone at
    once; the share_deletions job removes the spikes left, the counters and the record."""
    from chalicelib import deps
    from chalicelib.services import share_cleanup, share_deletion
    body = share_site(client, user_token, "Huge")
    for number in range(3):
        status, posted, _ = call(client, "POST", "/spikes", {
            "id": f"s{number}", "type": "page", "projectKey": body["slug"], "page": "/", "rating": "like",
            "comments": f"note {number}", "reviewer": {"id": "r1", "name": "Jane"}})
        assert status in (200, 201), posted
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)

    status, deleted, _ = call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)
    assert status == 200 and len(deleted["exported_spikes"]) == 3
    assert call(client, "GET", f"/shares/{body['share_id']}", token=user_token)[0] == 404
    assert call(client, "GET", f"/s/{body['slug']}/")[0] == 404
    assert user_of("owner@example.com").active_shares == 0
    assert len([s for s in all_items(Spike) if s.partition == body["share_id"]]) == 3  # left for the job

    assert share_cleanup.finish_pending_deletions(deps.share_files(), now=1_800_000_000)["finished"] == 1
    assert not [s for s in all_items(Spike) if s.partition == body["share_id"]]
    assert not [s for s in all_items(Share) if body["share_id"] in (s.share_id, s.pk)]
    assert not [i for i in all_items(LedgerItem) if body["share_id"] in i.pk]


def test_the_job_deletes_for_a_bounded_time_and_goes_on_with_its_other_steps(client, user_token, monkeypatch):
    """The share_deletions job deleted a share's spikes with no bound: a share of a million
    outlasted the function's 5 minutes at every run, the deletions behind it and the uploads'
    steps after it never ran, and every run was a failure. A run now deletes for
    DELETION_SECONDS_PER_RUN and leaves the rest to the next one."""
    from chalicelib.api import jobs
    from chalicelib.services import share_cleanup, share_deletion
    body = share_site(client, user_token, "Huge")
    assert call(client, "POST", "/spikes", {"id": "s0", "type": "page", "projectKey": body["slug"], "page": "/",
                                            "rating": "like"})[0] in (200, 201)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 200
    monkeypatch.setattr(share_cleanup, "DELETION_SECONDS_PER_RUN", 0)

    from tools.devserver import SCHEDULED_EVENT  # the event EventBridge sends, as the local server does
    ran = jobs.share_deletions(SCHEDULED_EVENT, None)
    assert ran["finished"] == 0 and "unfinished_uploads_expired" in ran  # went on to the uploads' steps
    assert [s for s in all_items(Spike) if s.partition == body["share_id"]]
    assert body["share_id"] in queued(share_work.DELETIONS)
    monkeypatch.setattr(share_cleanup, "DELETION_SECONDS_PER_RUN", 60)
    assert jobs.share_deletions(SCHEDULED_EVENT, None)["finished"] == 1
    assert not [s for s in all_items(Spike) if s.partition == body["share_id"]]
    assert body["share_id"] not in queued(share_work.DELETIONS)


def test_a_deletion_without_the_export_reads_no_feedback_first(client, user_token, monkeypatch):
    """DELETE ?exported_spikes=false (the dashboard's, the feedback downloaded) still read every
    spike of the share into one list and kept it on S3 before deleting anything: a share of some
    200,000 outgrew the function's memory and 25 s, at every try, and could not be deleted at all.
    It reads none: a retry asking for the export gets what is left."""
    from chalicelib.services import share_deletion, spikes
    body = share_site(client, user_token, "Huge")
    for number in range(2):
        assert call(client, "POST", "/spikes", {"id": f"s{number}", "type": "page", "projectKey": body["slug"],
                                                "page": "/", "rating": "like"})[0] in (200, 201)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    export_share = spikes.export_share

    def unbounded_read(share_id, max_weight=None):
        assert max_weight is not None, "the whole share read before the deletion"
        return export_share(share_id, max_weight)
    monkeypatch.setattr(spikes, "export_share", unbounded_read)
    status, deleted, _ = call(client, "DELETE", f"/shares/{body['share_id']}?exported_spikes=false", token=user_token)
    assert (status, deleted["exported_spikes"]) == (200, [])
    assert s3_keys("deletions/") == []
    status, again, _ = call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)  # what is left
    assert status == 200 and sorted(spike["id"] for spike in again["exported_spikes"]) == ["s0", "s1"]


def test_exported_spikes_is_true_or_false_and_anything_else_is_refused(client, user_token):
    """Only ``false`` was read: ``?exported_spikes=0``, ``=no`` or a typo answered the share with
    its feedback, and on a DELETE read the feedback the caller asked not to have (a share too
    large for one answer then stayed, 409). Any other value is a 400 now and deletes nothing."""
    body = share_site(client, user_token, "Flags")
    for number in range(2):
        assert call(client, "POST", "/spikes", {"id": f"f{number}", "type": "page", "projectKey": body["slug"],
                                                "page": "/", "rating": "like"})[0] in (200, 201)
    path = f"/shares/{body['share_id']}"
    for value in ("0", "no", "off", "fals", "false%20"):
        for method in ("GET", "DELETE"):
            status, refused, _ = call(client, method, f"{path}?exported_spikes={value}", token=user_token)
            assert (status, refused["code"]) == (400, "VALIDATION_ERROR"), (method, value, refused)
            assert "exported_spikes" in json.dumps(refused)
    status, share, _ = call(client, "GET", f"{path}?exported_spikes=False", token=user_token)
    assert (status, share["exported_spikes"], share["spike_count"]) == (200, [], 2)
    status, share, _ = call(client, "GET", f"{path}?exported_spikes=", token=user_token)  # empty: the default
    assert status == 200 and len(share["exported_spikes"]) == 2
    status, share, _ = call(client, "GET", f"{path}?exported_spikes=TRUE", token=user_token)
    assert status == 200 and len(share["exported_spikes"]) == 2
    status, deleted, _ = call(client, "DELETE", f"{path}?exported_spikes=FALSE", token=user_token)
    assert (status, deleted["exported_spikes"]) == (200, [])


def test_the_owner_takes_the_slug_back_while_the_job_finishes_a_deletion(client, user_token, monkeypatch):
    """A deletion that outlasts its request left the slug with the deleting share until the
    share_deletions job ran (up to 15 minutes): the owner's unshare and share again got
    ``huge-2``, a new address for every link and widget. The slug is retired for them at once."""
    from chalicelib.services import share_cleanup, share_deletion
    old = share_site(client, user_token, "Huge")
    assert call(client, "POST", "/spikes", {"id": "s0", "type": "page", "projectKey": old["slug"], "page": "/",
                                            "rating": "like", "comments": "old"})[0] in (200, 201)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{old['share_id']}", token=user_token)[0] == 200

    new = share_site(client, user_token, "Huge")
    assert new["slug"] == old["slug"] == "huge"
    assert call(client, "POST", "/spikes", {"id": "s1", "type": "page", "projectKey": "huge", "page": "/",
                                            "rating": "like", "comments": "new"})[0] in (200, 201)
    assert share_cleanup.finish_pending_deletions(deps.share_files(), now=1_800_000_000)["finished"] == 1
    assert call(client, "GET", "/s/huge/")[0] == 200
    listed = call(client, "GET", "/spikes?project=huge")[1]["data"]
    assert [(s["id"], s["comments"]) for s in listed] == [("s1", "new")]
    assert [s["id"] for s in call(client, "GET", "/shares", token=user_token)[1]] == [new["share_id"]]
    # Someone else's share of that name still gets a suffix: the slug stays its owner's.
    other = sign_in(client, "other@example.com")
    assert share_site(client, other, "Huge")["slug"] != "huge"


def test_the_owner_takes_a_numbered_slug_back_while_the_job_finishes_its_deletion(client, user_token, monkeypatch):
    """The owner's share got ``huge-2`` (someone else holds ``huge``); unshared with a deletion
    that outlasts its request and shared again under the same name, it keeps ``huge-2``, the
    address its links and widgets use, rather than ``huge-3``, as it does once the job finished."""
    from chalicelib.services import share_deletion
    other = sign_in(client, "other@example.com")
    assert share_site(client, other, "Huge")["slug"] == "huge"
    old = share_site(client, user_token, "Huge")
    assert old["slug"] == "huge-2"
    assert call(client, "POST", "/spikes", {"id": "s0", "type": "page", "projectKey": old["slug"], "page": "/",
                                            "rating": "like"})[0] in (200, 201)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{old['share_id']}", token=user_token)[0] == 200
    assert share_site(client, user_token, "Huge")["slug"] == "huge-2"


def test_the_owner_takes_the_slug_back_when_the_job_finishes_the_deletion_meanwhile(client, user_token, monkeypatch):
    """The new share's slug was refused while the deleting share held it, and the job finished
    that deletion (retiring the slug for the owner) before the refusal was looked into: the
    retirement found no deleting share and the owner got ``huge-2``, a new address for every link."""
    from chalicelib.services import share_deletion
    from chalicelib.store import share_tombstones
    from chalicelib.store import shares as share_store
    old = share_site(client, user_token, "Huge")
    assert call(client, "POST", "/spikes", {"id": "s0", "type": "page", "projectKey": old["slug"], "page": "/",
                                            "rating": "like"})[0] in (200, 201)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{old['share_id']}", token=user_token)[0] == 200
    assert share_store.get_by_id(old["share_id"]).status == share_store.DELETING  # left to the job
    retire = share_tombstones.retire_for_reuse

    def job_finished_first(slug, owner_id):
        share_tombstones.remove(share_store.get_by_id(old["share_id"], consistent=True))
        return retire(slug, owner_id)
    monkeypatch.setattr(share_tombstones, "retire_for_reuse", job_finished_first)
    new = share_site(client, user_token, "Huge")
    assert new["slug"] == "huge" and new["share_id"] != old["share_id"]


@pytest.mark.parametrize("window", ["before reading the deleting share", "before retiring its slug"])
def test_the_owner_takes_the_slug_back_when_the_job_finishes_the_deletion_amid_its_retirement(
        client, user_token, monkeypatch, window):
    """The job finished the deletion (retiring the slug for the owner) while the retirement for
    reuse was under way: after it read the claim, the deleting share was gone; after it read the
    share, its conditional write found the claim retired already. Either way the owner got
    ``huge-2``, a new address for every link (found by tests/reliability/test_share_lifecycle.py)."""
    from chalicelib.services import share_deletion
    from chalicelib.store import share_tombstones
    from chalicelib.store import shares as share_store
    old = share_site(client, user_token, "Huge")
    assert call(client, "POST", "/spikes", {"id": "s0", "type": "page", "projectKey": old["slug"], "page": "/",
                                            "rating": "like"})[0] in (200, 201)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{old['share_id']}", token=user_token)[0] == 200
    read_share = share_store.get_by_id

    def job_finishes_meanwhile(share_id, consistent=False):
        if share_id != old["share_id"] or not consistent:
            return read_share(share_id, consistent)
        deleting = read_share(share_id, consistent=True)
        if deleting is not None and deleting.status == share_store.DELETING:
            share_tombstones.remove(deleting)
            if window == "before retiring its slug":
                return deleting  # as read a moment before the job removed it
        return read_share(share_id, consistent=True)
    monkeypatch.setattr(share_store, "get_by_id", job_finishes_meanwhile)
    new = share_site(client, user_token, "Huge")
    assert new["slug"] == "huge" and new["share_id"] != old["share_id"]


def test_a_deleted_shares_feedback_leaves_its_owners_listings_while_the_job_removes_it(client, user_token, monkeypatch):
    """A deletion that outlasts its request leaves spikes for the share_deletions job (up to 15
    minutes): the owner's GET /spikes (the CLI's pull and push, the MCP server's get_spikes),
    export and lookups by id still showed them, so a pull right after an unshare brought the
    deleted feedback back, and an agent resolved it. They are gone with the share."""
    from chalicelib.services import share_cleanup, share_deletion
    gone, kept = share_site(client, user_token, "Gone"), share_site(client, user_token, "Kept")
    for spike_id, share in (("g0", gone), ("g1", gone), ("k0", kept)):
        assert call(client, "POST", "/spikes", {"id": spike_id, "type": "page", "projectKey": share["share_id"],
                                                "page": "/", "rating": "like", "comments": spike_id})[0] in (200, 201)
    monkeypatch.setattr(share_deletion, "REQUEST_DELETION_SECONDS", 0)
    assert call(client, "DELETE", f"/shares/{gone['share_id']}", token=user_token)[0] == 200
    assert len([s for s in all_items(Spike) if s.partition == gone["share_id"]]) == 2  # left for the job

    def listed() -> List[str]:
        return [spike["id"] for spike in call(client, "GET", "/spikes", token=user_token)[1]["data"]]
    assert listed() == ["k0"]
    from tests.test_clients import ureq
    status, raw = ureq(client, "GET", f"/spikes?token={user_token}")  # the CLI's push: a bare array
    assert status == 200 and [spike["id"] for spike in json.loads(raw)] == ["k0"]
    exported = client.http.get("/spikes/export?format=jsonl", headers={"Authorization": f"Bearer {user_token}"})
    assert [json.loads(line)["id"] for line in exported.body.decode().splitlines()] == ["k0"]
    for method, body in (("GET", None), ("PATCH", {"resolved": True}), ("DELETE", None)):
        assert call(client, method, "/spikes/g0", body, token=user_token)[0] == 404
    assert share_cleanup.finish_pending_deletions(deps.share_files(), now=1_800_000_000)["finished"] == 1
    assert listed() == ["k0"]


def test_delete_by_slug_frees_the_slot_and_the_slug(client, user_token, env):
    env(FREE_SHARE_LIMIT="1")
    body = share_site(client, user_token, "Only One")
    assert upload(client, user_token, metadata={"name": "Second"})[1]["code"] == "SHARE_LIMIT"
    status, deleted, _ = call(client, "DELETE", f"/shares/{body['slug']}", token=user_token)
    assert status == 200 and deleted == {"ok": True, "exported_spikes": []}
    again = share_site(client, user_token, "Only One")
    assert again["slug"] == "only-one" and again["share_id"] != body["share_id"]
    assert user_of("owner@example.com").active_shares == 1


def test_a_deleted_shares_slug_stays_its_owners(client, user_token):
    """Its old links (and the widget on saved copies of its page) must never lead to a
    stranger's share: the slug is retired for its owner, not freed for everyone."""
    body = share_site(client, user_token, "Launch Page")
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 200
    stranger = sign_in(client, "stranger@example.com")
    taken = share_site(client, stranger, "Launch Page", slug="launch-page")
    assert taken["slug"] == "launch-page-2"  # a wish, so a suffix; not the retired slug
    assert call(client, "GET", "/s/launch-page/")[0] == 404
    assert call(client, "GET", "/shares/launch-page", token=stranger)[0] == 404
    assert call(client, "GET", "/shares/launch-page", token=user_token)[0] == 404
    again = share_site(client, user_token, "Launch Page")
    assert again["slug"] == "launch-page" and again["share_id"] != body["share_id"]
    assert call(client, "GET", "/s/launch-page/")[0] == 200


def test_feedback_sent_to_a_retired_slug_is_kept_for_its_owner(client, user_token):
    body = share_site(client, user_token, "Gone Soon")
    assert call(client, "DELETE", f"/shares/{body['slug']}", token=user_token)[0] == 200
    # A reviewer's widget still open on the deleted share's page: kept, as the owner's (126).
    status, created, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": body["slug"],
                                                         "page": "/", "url": "https://x.example/"})
    assert status == 201, created
    [stored] = [s for s in all_items(Spike) if s.public_id == created["id"]]
    owner_id = user_of("owner@example.com").user_id
    assert (stored.partition, stored.share_id, stored.owner_id) == \
        (f"user#{owner_id}#key#{body['slug']}", None, owner_id)


def test_finishing_a_deletion_again_leaves_the_owners_new_share_on_the_slug(client, user_token):
    from chalicelib.store import share_tombstones
    body = share_site(client, user_token, "Twice")
    old = Share.get(f"share#{body['share_id']}")
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=user_token)[0] == 200
    again = share_site(client, user_token, "Twice")
    assert again["slug"] == body["slug"]
    share_tombstones.remove(old)  # a late retry of the first deletion's last step
    assert Share.get(f"slug#{body['slug']}").share_id == again["share_id"]
    assert Share.get(f"share#{again['share_id']}").slug == body["slug"]
    assert call(client, "GET", f"/s/{body['slug']}/")[0] == 200


def test_a_claimed_agent_accounts_retired_slugs_are_kept_for_its_new_owner(client):
    from tests.test_agent_signup import signup
    key = signup(client)[1]["api_key"]
    body = share_site(client, key, "Agent Preview")
    assert call(client, "DELETE", f"/shares/{body['share_id']}", token=key)[0] == 200
    human = sign_in(client, "human@example.com")
    assert call(client, "POST", "/auth/link-key", {"api_key": key}, token=human)[0] == 200
    stranger = sign_in(client, "stranger@example.com")
    assert share_site(client, stranger, "Agent Preview")["slug"] == "agent-preview-2"
    assert share_site(client, human, "Agent Preview")["slug"] == "agent-preview"


def test_metadata_sent_as_a_file_part_is_still_metadata(client, user_token):
    content_type, body = multipart([("metadata", "meta.json", b'{"name": "From File"}'), ("files", "index.html", INDEX)])
    status, created, _ = call(client, "POST", "/shares", token=user_token, raw=body,
                              headers={"Content-Type": content_type})
    assert status == 201 and created["slug"] == "from-file"
    assert list(Share.get(f"share#{created['share_id']}").files) == ["index.html"]


# --- the same rules on DynamoDB Local (Amazon's engine) ------------------------------------

def _create_concurrently(owners: List[User], name: str) -> List[str]:
    import threading
    from chalicelib.limit_errors import ShareLimit
    from chalicelib.services import share_creation
    from chalicelib.services.uploads import UploadedFile
    settings, outcomes = deps.settings(), []
    barrier = threading.Barrier(len(owners))

    def create(owner: User) -> None:
        fresh = User.get(owner.user_id)  # every racer passes the pre-check
        barrier.wait(timeout=30)
        try:
            share_creation.create_share(settings, deps.share_files(), fresh, share_creation.ShareOptions(name=name),
                                        [UploadedFile("index.html", INDEX, "text/html")], "http://x")
            outcomes.append("ok")
        except ShareLimit:
            outcomes.append("limit")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcomes.append(repr(exc))
    threads = [threading.Thread(target=create, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_concurrent_uploads_never_exceed_the_share_limit(store_backend, env):
    if store_backend == "moto":
        pytest.skip("moto's in-memory transactions are not isolated across threads; DynamoDB Local is")
    from tests.factories import make_user
    env(FREE_SHARE_LIMIT="5")
    owner = make_user("racer@example.com")
    outcomes = _create_concurrently([owner] * 16, "Race")
    assert sorted(outcomes) == ["limit"] * 11 + ["ok"] * 5, outcomes
    assert User.get(owner.user_id).active_shares == 5
    owned = list(Share.owner_index.query(owner.user_id))
    assert len({share.slug for share in owned}) == 5
    assert len(s3_keys()) == 5  # the refused uploads removed their files


def test_concurrent_uploads_with_one_name_get_distinct_slugs(store_backend):
    if store_backend == "moto":
        pytest.skip("moto's in-memory transactions are not isolated across threads; DynamoDB Local is")
    from tests.factories import make_user
    owners = [make_user(f"u{number}@example.com") for number in range(8)]
    outcomes = _create_concurrently(owners, "Launch")
    assert outcomes == ["ok"] * 8, outcomes
    claims = [item for item in all_items(Share) if item.pk.startswith("slug#")]
    assert len(claims) == 8 and len({claim.share_id for claim in claims}) == 8
    assert "slug#launch" in {claim.pk for claim in claims}


def test_stale_pre_check_is_caught_by_the_transaction(store_backend, env):
    from chalicelib.limit_errors import ShareLimit
    from chalicelib.services import share_creation
    from chalicelib.services.uploads import UploadedFile
    from tests.factories import make_user
    env(FREE_SHARE_LIMIT="1")
    stale = make_user("stale@example.com")
    files = [UploadedFile("index.html", INDEX, "text/html")]
    share_creation.create_share(deps.settings(), deps.share_files(), stale, share_creation.ShareOptions(name="first"), files,
                                "http://x")
    with pytest.raises(ShareLimit):
        share_creation.create_share(deps.settings(), deps.share_files(), stale, share_creation.ShareOptions(name="second"),
                                    files, "http://x")
    assert User.get(stale.user_id).active_shares == 1


def test_file_names_escaped_the_way_the_rust_cli_escapes_them(client, user_token):
    # reqwest writes filename="…" with backslashes and quotes escaped (\\ and \").
    files = [("index.html", INDEX), ("assets\\\\img\\\\logo.png", PNG), ('say \\"hi\\".css', b"")]
    status, body, _ = upload(client, user_token, files, {"name": "Windows"})
    assert status == 201, body
    assert set(Share.get(f"share#{body['share_id']}").files) == {"index.html", "assets/img/logo.png", 'say "hi".css'}

"""The real local server (``make dev``) over real HTTP: what a newcomer and a browser see.

chalice.test's client cannot send CORS preflights, keep connections alive, restart or receive
signals; these tests run ``python -m tools.devserver`` in a subprocess (tests/live.py).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
import uuid
from typing import Callable, List
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.live import ROOT, LiveServer, SourceAddressAdapter, port_is_free

pytestmark = pytest.mark.e2e


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_newcomer_signs_in_with_the_printed_link_and_reads_me(live_server):
    mark = len(live_server.lines())
    # What the README's curl walkthrough sends.
    response = requests.post(f"{live_server.url}/auth/login", data='{"email": "Newcomer@Example.com"}',
                             headers={"Content-Type": "application/json", "User-Agent": "curl/8.5.0"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True and response.json()["message"] == "Check your email"

    # The magic link is printed on the server's console, pointing at this server.
    match = live_server.wait_for_output(r"(https?://\S+/auth/verify\?token=([A-Za-z0-9_\-]+))", start=mark)
    link, login_token = match.group(1), match.group(2)
    assert link.startswith(live_server.url + "/"), link
    assert "MAIL to newcomer@example.com" in live_server.output()
    assert live_server.magic_link_token("newcomer@example.com", start=mark) == login_token

    # Opening the link shows a confirm page and does not spend the token ...
    page = requests.get(link, timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert login_token in page.text

    # ... posting it does.
    response = requests.post(f"{live_server.url}/auth/verify", json={"login_token": login_token}, timeout=30)
    assert response.status_code == 200, response.text
    verified = response.json()
    assert verified["ok"] is True and verified["user"]["email"] == "newcomer@example.com"

    me = requests.get(f"{live_server.url}/me", headers=_bearer(verified["token"]), timeout=30)
    assert me.status_code == 200
    assert me.json()["email"] == "newcomer@example.com" and me.json()["tier"] == "free"

    again = requests.post(f"{live_server.url}/auth/verify", json={"login_token": login_token}, timeout=30)
    assert again.status_code == 401 and again.json()["code"] == "TOKEN_USED"


def test_the_readme_walkthrough_runs_as_written_with_bash_and_curl(live_server, tmp_path):
    """README's "Try it with curl", each line run by bash and the real curl in an empty folder, as
    a reader in a fresh clone runs it: every curl exits 0 with a 2xx. Its upload once named
    index.html and css/site.css, which a clone does not have: curl, told -s, exited 26 and printed
    nothing. (tests/test_doc_curls.py reads the answers' fields in-process.)"""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Try it with curl", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    env = {**os.environ, "TOKEN": ""}
    ran, mark = [], len(live_server.lines())
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("export TOKEN="):
            continue  # the reader's own step: TOKEN is set below from the sign-in's answer
        line = line.replace("http://127.0.0.1:8000", live_server.url)
        if "<token from the console>" in line:
            line = line.replace("<token from the console>", live_server.magic_link_token("you@example.com", start=mark))
        is_curl = line.startswith("curl ")
        mark = len(live_server.lines())
        done = subprocess.run(["bash", "-c", line + (" -o answer -w '%{http_code}'" if is_curl else "")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        status = done.stdout.strip() if is_curl else "200"
        ran.append((line[:80], done.returncode, status))
        if is_curl and "/auth/verify" in line and done.returncode == 0:
            env["TOKEN"] = json.loads((tmp_path / "answer").read_text(encoding="utf-8"))["token"]
    assert [(line, code, status) for line, code, status in ran if code != 0 or not status.startswith("2")] == []
    assert sum(1 for line, _, _ in ran if line.startswith("curl ")) >= 8 and env["TOKEN"]


def test_admin_token_is_the_one_given_to_the_server(live_server):
    assert f"Admin token (?token=): {live_server.admin_token}" in live_server.output()


def test_the_start_names_the_dashboard_and_the_api_reference(live_server):
    # The banner named only the API, whose address answers {"name": "spikes", "ok": true} to a
    # browser: a newcomer had to find /dashboard and /docs in the README.
    assert f"Dashboard: {live_server.url}/dashboard   API reference: {live_server.url}/docs" in live_server.output()
    assert requests.get(f"{live_server.url}/dashboard", timeout=30).status_code == 200


def preflight(server, path: str, origin: str) -> requests.Response:
    """The OPTIONS request a browser sends before a JSON POST from another origin."""
    response = requests.options(f"{server.url}{path}", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"}, timeout=30)
    assert response.status_code == 200
    return response


def test_cors_preflight_from_a_file_page_allows_a_json_post(live_server):
    response = preflight(live_server, "/auth/login", "null")
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "null")
    allowed_headers = [h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")]
    assert "content-type" in allowed_headers
    allowed_methods = [m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")]
    assert "POST" in allowed_methods

    # The actual POST answers with the origin header too.
    post = requests.post(f"{live_server.url}/auth/login", json={"email": "cors@example.com"},
                         headers={"Origin": "null"}, timeout=30)
    assert post.status_code == 200 and post.headers["Access-Control-Allow-Origin"] in ("*", "null")


def test_widget_preflight_for_post_spikes_allows_content_type(live_server):
    response = preflight(live_server, "/spikes", "https://mockups.example")
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://mockups.example")
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()


def test_unknown_route_is_a_404_envelope_over_http(live_server):
    response = requests.get(f"{live_server.url}/does/not/exist", timeout=30)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "NOT_FOUND" and body["error"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"

    wrong_method = requests.delete(f"{live_server.url}/me", timeout=30)
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "METHOD_NOT_ALLOWED"


def test_keep_alive_requests_do_not_pay_the_nagle_delay(live_server):
    from tools.devserver import handler_class
    assert handler_class().disable_nagle_algorithm is True
    assert handler_class().protocol_version == "HTTP/1.1"  # keep-alive at all

    # Generous sanity bound: with Nagle, 50 keep-alive requests cost >= 50 * 40 ms = 2 s.
    # The best of three rounds absorbs a noisy machine; bench/ measures the real numbers.
    rounds = []
    with requests.Session() as session:
        session.get(f"{live_server.url}/", timeout=30)
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(50):
                assert session.get(f"{live_server.url}/me", timeout=30).status_code == 401
            rounds.append(time.perf_counter() - started)
    assert min(rounds) < 1.5, rounds


def test_concurrent_requests_each_see_their_own_request(live_server):
    """The server is threaded: each request must read its own headers (app.current_request)."""
    emails = [f"conc{i}@example.com" for i in range(4)]
    tokens = {email: live_server.sign_in(email) for email in emails}
    plan = [random.choice(emails) for _ in range(200)]

    def whoami(email: str):
        response = requests.get(f"{live_server.url}/me", headers=_bearer(tokens[email]), timeout=60)
        return email, response.status_code, response.json().get("email")

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(whoami, plan))
    assert all(status == 200 for _, status, _ in results), results
    assert [(want, got) for want, _, got in results if want != got] == []


def test_each_caller_is_seen_at_its_own_address(live_server_factory):
    """Per-address limits count each caller apart, as behind API Gateway (stock chalice local
    would put every caller in 127.0.0.1's bucket)."""
    server = live_server_factory(env={"RATE_SPIKES_PER_MINUTE": "2"})

    def post_from(address: str) -> int:
        with requests.Session() as http:
            http.mount("http://", SourceAddressAdapter(address))
            return http.post(f"{server.url}/spikes", timeout=30, json={
                "type": "page", "projectKey": f"addr-{uuid.uuid4().hex[:8]}", "page": "index.html",
                "rating": "like", "reviewer": {"id": "r1", "name": "Reviewer"}}).status_code

    assert [post_from("127.0.0.2") for _ in range(3)] == [201, 201, 429]
    assert post_from("127.0.0.3") == 201


def test_make_dev_runs_on_dynamodb_local_and_its_data_survives_a_restart(live_server_factory):
    server = live_server_factory()
    assert "DynamoDB Local at http://127.0.0.1:" in server.output()
    assert f"tables in {server.data_dir.resolve() / 'dynamodb-local'}" in server.output()
    token = server.sign_in("keeper@example.com")
    posted = requests.post(f"{server.url}/spikes", json={"type": "page", "projectKey": "kept"}, timeout=30)
    assert posted.status_code == 201
    first_pid = server.pid

    server.restart()
    assert server.pid != first_pid
    assert "Restored local data from" in server.output()
    me = requests.get(f"{server.url}/me", headers=_bearer(token), timeout=30)
    assert me.status_code == 200 and me.json()["email"] == "keeper@example.com"
    listed = requests.get(f"{server.url}/spikes?project=kept", timeout=30).json()["data"]
    assert [item["id"] for item in listed] == [posted.json()["id"]]
    assert (server.data_dir / "dynamodb-local" / "shared-local-instance.db").is_file()
    assert not (server.data_dir / "dynamodb").exists()  # DynamoDB Local keeps the tables itself


def test_each_start_gives_the_bucket_the_current_lifecycle_rules_and_keeps_its_objects(live_server_factory):
    """A bucket whose lifecycle rules predate one (deletions/ expiring a day after a file is
    written: docs/security.md 247) is not kept by a restart: the server's S3 is moto in memory,
    so every start creates the bucket with the current rules, and restores only its objects."""
    import boto3

    from chalicelib.store.files import KEPT_EXPORTS_PREFIX

    def bucket_of(server):
        endpoint = re.findall(r"AWS emulator at (http://[0-9.:]+)", server.output())[-1]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        [bucket] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        return s3, bucket

    server = live_server_factory(engine="moto")
    s3, bucket = bucket_of(server)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [  # as before 247
        {"ID": "expire-exports", "Status": "Enabled", "Filter": {"Prefix": "exports/"}, "Expiration": {"Days": 1}}]})
    s3.put_object(Bucket=bucket, Key=f"{KEPT_EXPORTS_PREFIX}sh_kept.json", Body=b"[]")
    requests.post(f"{server.url}/spikes", json={"type": "page", "projectKey": "saved"}, timeout=30)  # saves
    server.restart()
    s3, bucket = bucket_of(server)
    rules = {rule["ID"]: rule for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["expire-kept-exports"]["Filter"] == {"Prefix": KEPT_EXPORTS_PREFIX}, rules
    assert s3.get_object(Bucket=bucket, Key=f"{KEPT_EXPORTS_PREFIX}sh_kept.json")["Body"].read() == b"[]"


def test_the_embedded_emulator_fallback_saves_its_tables_and_dynamodb_local_imports_them(live_server_factory):
    data_dir = live_server_factory(start=False).data_dir
    fallback = LiveServer(data_dir=data_dir, engine="moto")
    try:
        fallback.start()
        assert "tables on the embedded emulator (fallback)" in fallback.output()
        token = fallback.sign_in("moved@example.com")
        fallback.restart()
        assert "Restored local data from" in fallback.output()
        assert requests.get(f"{fallback.url}/me", headers=_bearer(token), timeout=30).status_code == 200
    finally:
        fallback.close()
    assert list((data_dir / "dynamodb").glob("*.jsonl"))

    server = live_server_factory(data_dir=data_dir)
    assert "Imported tables saved by the embedded emulator into DynamoDB Local" in server.output()
    me = requests.get(f"{server.url}/me", headers=_bearer(token), timeout=30)
    assert me.status_code == 200 and me.json()["email"] == "moved@example.com"


def _saved_spikes_are_found_after(live_server_factory, saved_as: Callable[[List[dict]], List[dict]]) -> None:
    """A spike posted on the embedded emulator's saved tables, those rewritten by ``saved_as``
    (what an older version saved), then the server started again: the spike must be in the
    owner's open feedback and found by its id."""
    data_dir = live_server_factory(start=False).data_dir
    fallback = LiveServer(data_dir=data_dir, engine="moto")
    try:
        fallback.start()
        token = fallback.sign_in("older@example.com")
        posted = requests.post(f"{fallback.url}/spikes", headers=_bearer(token), timeout=30,
                               json={"type": "page", "projectKey": "mine", "comments": "kept"})
        assert posted.status_code == 201, posted.text
        fallback.stop()
        for path in (data_dir / "dynamodb").glob("*.jsonl"):
            items = saved_as([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
            path.write_text("".join(json.dumps(item) + "\n" for item in items))
        fallback.start()
        spike_id = posted.json()["id"]
        listed = requests.get(f"{fallback.url}/spikes?resolved=false", headers=_bearer(token), timeout=30)
        assert [spike["id"] for spike in listed.json()["data"]] == [spike_id], listed.text
        assert requests.get(f"{fallback.url}/spikes/{spike_id}", headers=_bearer(token), timeout=30).status_code == 200
    finally:
        fallback.close()


def _without_upgraded_attributes(items: List[dict]) -> List[dict]:
    return [{name: value for name, value in item.items() if name not in ("open_sort_key", "owner_project")}
            for item in items]


def test_saved_spikes_of_an_older_version_are_upgraded_after_their_restore(live_server_factory):
    """The upgrade steps mark themselves done and then look only at spikes received since: run
    before the saved tables were put back (as they were), an older version's spikes, restored
    with their older times, were never upgraded, and the owner's open feedback and lookups by id
    (owner_project, open_sort_key: store/spike_ids.py, store/open_spikes.py) left them out."""
    def older_version(items: List[dict]) -> List[dict]:  # spikes without the attributes, no markers
        return _without_upgraded_attributes(
            [item for item in items if not item.get("pk", {}).get("S", "").startswith("migration#")])
    _saved_spikes_are_found_after(live_server_factory, older_version)


def test_saved_spikes_an_earlier_start_marked_as_looked_at_are_upgraded(live_server_factory):
    """The versions of 2026-12-06 and 07 before the order above was right ran the upgrade steps on
    the emulator's empty tables and saved their markers done, dated after every restored spike:
    with the order right, each start still looked only at spikes received since. The first start
    on saved data looks at every spike once (store/setup.upgrade_items)."""
    marked = json.dumps({"checked_to": time.time() + 3 * 3600})

    def marked_hours_later(items: List[dict]) -> List[dict]:  # the spikes without the attributes
        items = _without_upgraded_attributes(
            [item for item in items if item.get("pk", {}).get("S") != "migration#saved-data-looked-at"])
        for item in items:
            if item.get("pk", {}).get("S") in ("migration#spike-owner-project", "migration#open-spikes"):
                item["detail"] = {"S": marked}
        return items
    _saved_spikes_are_found_after(live_server_factory, marked_hours_later)


def test_without_java_make_dev_announces_the_fallback(live_server_factory):
    server = live_server_factory(start=False)
    environment = server.environment()
    server.environment = lambda: {**environment, "PATH": "/nonexistent"}  # no java on the PATH
    server.start()
    assert "DynamoDB Local is not available: Java is not installed" in server.output()
    assert "Falling back to the embedded moto emulator" in server.output()
    posted = requests.post(f"{server.url}/spikes", json={"type": "page", "projectKey": "fallback"}, timeout=30)
    assert posted.status_code == 201


def test_clean_data_wipes_everything(live_server_factory, tmp_path):
    data_dir = tmp_path / "dev-data"
    server = live_server_factory(data_dir=data_dir)
    token = server.sign_in("forgotten@example.com")
    server.stop()
    assert (data_dir / "dynamodb-local").is_dir()

    # `make clean-data` (DATA_DIR points it at this test's directory, not the repo's .local-data).
    subprocess.run(["make", "-s", "clean-data", f"DATA_DIR={data_dir}"], cwd=ROOT, check=True,
                   stdin=subprocess.DEVNULL, timeout=120)
    assert not data_dir.exists()

    server.start()
    assert "Restored local data" not in server.output().split("Stopped.")[-1]
    response = requests.get(f"{server.url}/me", headers=_bearer(token), timeout=30)
    assert response.status_code == 401 and response.json()["code"] == "AUTH_FAILED"


def test_a_fresh_data_dir_starts_empty(live_server_factory):
    old = live_server_factory()
    token = old.sign_in("elsewhere@example.com")
    fresh = live_server_factory()
    assert fresh.data_dir != old.data_dir
    response = requests.get(f"{fresh.url}/me", headers=_bearer(token), timeout=30)
    assert response.status_code == 401 and response.json()["code"] == "AUTH_FAILED"


def test_sigterm_stops_the_server_and_its_emulator(live_server_factory):
    server = live_server_factory()
    emulator_port = int(re.search(r"AWS emulator at http://127\.0\.0\.1:(\d+)", server.output()).group(1))
    engine_port = int(re.search(r"DynamoDB Local at http://127\.0\.0\.1:(\d+) \(pid (\d+)", server.output()).group(1))
    engine_pid = int(re.search(r"DynamoDB Local at http://127\.0\.0\.1:(\d+) \(pid (\d+)", server.output()).group(2))
    assert not port_is_free(server.port) and not port_is_free(emulator_port) and not port_is_free(engine_port)
    # An idle keep-alive connection must not hold the shutdown up.
    session = requests.Session()
    session.get(f"{server.url}/", timeout=30)

    pid = server.pid
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)  # by PID
    assert server.process.wait(timeout=20) == 0, server.output()
    assert time.monotonic() - started < 20
    session.close()
    server.stop()  # no-op now; reaps the reader thread

    for stopped in (pid, engine_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(stopped, 0)
    assert port_is_free(server.port) and port_is_free(emulator_port) and port_is_free(engine_port)
    assert server.output().rstrip().endswith("Stopped.")


def _run_to_its_end(server: LiveServer) -> tuple:
    """Run a server that should refuse to start; (exit code, output, nothing left running?).
    (server.start() would take another server's answers on the same port for its own.)"""
    refused = subprocess.Popen(server.command(), cwd=ROOT, env=server.environment(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = refused.communicate(timeout=60)
    finally:
        if refused.poll() is None:
            os.killpg(refused.pid, signal.SIGKILL)
    try:
        os.killpg(refused.pid, 0)
        left = False
    except ProcessLookupError:
        left = True
    return refused.returncode, output, left


def _engine_pid(server: LiveServer) -> int:
    return int(re.search(r"DynamoDB Local at http://127\.0\.0\.1:\d+ \(pid (\d+)", server.output()).group(1))


def test_a_second_server_on_the_same_data_or_port_says_why_and_leaves_nothing_running(live_server_factory):
    """`make dev` run twice: before, the second one started a second DynamoDB Local on the first
    one's SQLite file, then died on the taken port with a traceback, leaving that Java running."""
    first = live_server_factory()
    kept = requests.post(f"{first.url}/spikes", json={"type": "page", "projectKey": "one-owner"}, timeout=30)
    assert kept.status_code == 201

    same_data = live_server_factory(start=False, data_dir=first.data_dir)
    same_port = live_server_factory(start=False, port=first.port)
    for second, why in (
            (same_data, f"Another local server (pid {first.pid}, its DynamoDB Local pid {_engine_pid(first)})"
                        f" is using {first.data_dir}"),
            (same_port, f"Cannot listen on 127.0.0.1:{first.port}")):
        code, output, nothing_left = _run_to_its_end(second)
        assert why in output, output
        assert "Traceback" not in output and code == 1, output
        assert nothing_left, "something it started is still running"
    assert not (same_port.data_dir / "dynamodb-local").exists()  # refused before anything started

    # The first server and its data are untouched, and the folder is free again once it stops.
    listed = requests.get(f"{first.url}/spikes?project=one-owner", timeout=30).json()["data"]
    assert [item["id"] for item in listed] == [kept.json()["id"]]
    first.stop()
    same_data.start()
    listed = requests.get(f"{same_data.url}/spikes?project=one-owner", timeout=30).json()["data"]
    assert [item["id"] for item in listed] == [kept.json()["id"]]


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_server_killed_with_sigkill_takes_its_java_with_it(live_server_factory):
    """SIGKILL gives the server no chance to stop DynamoDB Local: before, its Java ran on for good
    (orphaned, ~200 MB, holding the folder's lock), and the next `make dev` was refused with
    "Ctrl-C where it runs" for a server that no longer existed. The kernel now stops it."""
    first = live_server_factory()
    kept = requests.post(f"{first.url}/spikes", json={"type": "page", "projectKey": "survivor"}, timeout=30)
    assert kept.status_code == 201
    engine = _engine_pid(first)
    os.kill(first.pid, signal.SIGKILL)  # the server only, not its process group
    first.process.wait(timeout=10)
    assert _gone_within(engine, 30), "DynamoDB Local outlived the server killed with SIGKILL"

    again = live_server_factory(data_dir=first.data_dir)
    listed = requests.get(f"{again.url}/spikes?project=survivor", timeout=30).json()["data"]
    assert [item["id"] for item in listed] == [kept.json()["id"]]


def test_a_java_that_outlived_its_server_holds_the_folder(live_server_factory, tmp_path):
    """Without setpriv (the engine is then not tied to the server), DynamoDB Local left running
    keeps the lock it inherited: a new server is refused, naming the Java to stop, instead of
    opening the same SQLite file beside it."""
    first = live_server_factory(start=False)
    java_only = tmp_path / "bin"  # a PATH with java and no setpriv
    java_only.mkdir()
    (java_only / "java").symlink_to(shutil.which("java"))
    first.environment = lambda: {**LiveServer.environment(first), "PATH": str(java_only)}
    first.start()
    engine = _engine_pid(first)
    os.kill(first.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    os.kill(engine, 0)  # still running

    again = live_server_factory(start=False, data_dir=first.data_dir)
    code, output, _ = _run_to_its_end(again)
    assert code == 1 and f"its DynamoDB Local pid {engine}) is using {first.data_dir}" in output, output
    assert f"its server is gone: stop the DynamoDB Local it left with kill {engine}" in output, output
    os.kill(engine, signal.SIGTERM)
    assert _gone_within(engine, 20)
    again.start()


@pytest.mark.parametrize("damage", ["database", "share files"])
def test_damaged_saved_data_is_named_with_what_to_do_and_nothing_is_left_running(live_server_factory, damage):
    """A damaged SQLite file (or S3 manifest) ended the start in a traceback about DescribeTable
    (or JSON) that named neither the folder nor a way out."""
    server = live_server_factory()
    token = server.sign_in("damaged@example.com")
    created = requests.post(f"{server.url}/shares", headers=_bearer(token), timeout=30,
                            files=[("metadata", (None, '{"name": "Kept"}')),
                                   ("files", ("index.html", b"<h1>hi</h1>", "text/html"))])
    assert created.status_code == 201, created.text
    assert server.stop() == 0
    if damage == "database":
        (server.data_dir / "dynamodb-local" / "shared-local-instance.db").write_bytes(b"\x13not sqlite" * 400)
    else:
        (server.data_dir / "s3" / "manifest.json").write_text("{truncated")

    again = live_server_factory(start=False, data_dir=server.data_dir)
    code, output, nothing_left = _run_to_its_end(again)
    assert code == 1 and "Traceback" not in output, output
    assert f"Cannot read the local data saved in {server.data_dir} (" in output, output
    assert f"mv {server.data_dir} {server.data_dir}.broken" in output
    assert f"make clean-data DATA_DIR={server.data_dir}" in output
    assert nothing_left, "something it started is still running"


def test_dynamodb_local_killed_under_the_server_is_started_again_with_its_data(live_server_factory):
    server = live_server_factory()
    first = requests.post(f"{server.url}/spikes", json={"type": "page", "projectKey": "outlived"}, timeout=30)
    assert first.status_code == 201
    engine = _engine_pid(server)
    mark = len(server.lines())
    os.kill(engine, signal.SIGKILL)
    back = server.wait_for_output(r"DynamoDB Local is back \(pid (\d+)\)", timeout=60, start=mark)
    assert int(back.group(1)) != engine
    assert f"DynamoDB Local (pid {engine}) exited with code -9; starting it again" in server.output()
    assert (server.data_dir / "server.lock").read_text().splitlines()[1] == f"its DynamoDB Local pid {back.group(1)}"

    second = requests.post(f"{server.url}/spikes", json={"type": "page", "projectKey": "outlived"}, timeout=30)
    assert second.status_code == 201, second.text
    listed = requests.get(f"{server.url}/spikes?project=outlived", timeout=30).json()["data"]
    assert sorted(item["id"] for item in listed) == sorted([first.json()["id"], second.json()["id"]])
    assert server.stop() == 0


def test_server_backed_by_dynamodb_local(live_server_factory, dynamodb_local_endpoint):
    if dynamodb_local_endpoint is None:
        pytest.skip("DynamoDB Local disabled (--no-dynamodb-local)")
    server = live_server_factory(dynamodb_endpoint=dynamodb_local_endpoint, env={"RATE_LOGIN_PER_IP": "1000", "RATE_VERIFY_PER_MINUTE": "1000",
                                                                                                  "RATE_SIGN_IN_MAILS_PER_HOUR": "100000"})
    assert f"DynamoDB at {dynamodb_local_endpoint}" in server.output()
    tokens = {f"ddb{i}@example.com": None for i in range(3)}
    for email in tokens:
        tokens[email] = server.sign_in(email)

    def whoami(email: str):
        response = requests.get(f"{server.url}/me", headers=_bearer(tokens[email]), timeout=60)
        return email, response.status_code, response.json().get("email")

    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(whoami, [random.choice(list(tokens)) for _ in range(90)]))
    assert [(want, status, got) for want, status, got in results if status != 200 or want != got] == []
    # Nothing is persisted in this mode.
    assert not (server.data_dir / "dynamodb").exists()


@pytest.mark.parametrize("engine", ["dynamodb-local", "moto"])
def test_a_login_token_is_spent_once_under_a_race(live_server_factory, engine):
    """moto alone is not atomic across threads (two verifies could both win); in the fallback the
    local server serializes it so that conditional writes and transactions behave as in DynamoDB."""
    # 72 verifies from one address within a minute: past the per-network limit (security 241).
    live_server = live_server_factory(engine=engine, persist=False, env={"RATE_VERIFY_PER_MINUTE": "1000"})
    for round_ in range(3):
        email = f"race{round_}@example.com"
        mark = len(live_server.lines())
        assert requests.post(f"{live_server.url}/auth/login", json={"email": email}, timeout=30).status_code == 200
        login_token = live_server.magic_link_token(email, start=mark)

        def verify(_):
            response = requests.post(f"{live_server.url}/auth/verify", json={"login_token": login_token}, timeout=60)
            return response.status_code, response.json().get("code")

        with ThreadPoolExecutor(max_workers=24) as pool:
            results = list(pool.map(verify, range(24)))
        assert results.count((200, None)) == 1, results
        assert results.count((401, "TOKEN_USED")) == 23, results


def test_the_local_server_runs_the_scheduled_jobs(live_server_factory, dynamodb_local_endpoint):
    """`make dev` runs what EventBridge runs in AWS: a share deletion whose clean-up failed
    (left marked ``deleting``, recorded as pending) is finished by the local share_deletions pass."""
    import boto3
    if dynamodb_local_endpoint is None:
        pytest.skip("DynamoDB Local disabled (--no-dynamodb-local)")
    server = live_server_factory(dynamodb_endpoint=dynamodb_local_endpoint, env={"LOCAL_JOBS_INTERVAL_SECONDS": "0.5"})
    token = server.sign_in("jobs@example.com")
    created = requests.post(f"{server.url}/shares", headers=_bearer(token), timeout=30,
                            files=[("metadata", (None, '{"name": "Left behind"}')),
                                   ("files", ("index.html", b"<h1>hi</h1>", "text/html"))])
    assert created.status_code == 201, created.text
    share_id = created.json()["share_id"]
    prefix = server.extra_env["SPIKES_TABLE_PREFIX"]
    dynamodb = boto3.client("dynamodb", endpoint_url=dynamodb_local_endpoint, region_name="us-east-1")
    share_key = {"pk": {"S": f"share#{share_id}"}}
    # A deletion whose function died after its tombstone: what DELETE /shares writes first.
    dynamodb.update_item(TableName=f"{prefix}shares", Key=share_key, UpdateExpression="SET #s = :d",
                         ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":d": {"S": "deleting"}})
    dynamodb.update_item(TableName=f"{prefix}deliveries", Key={"delivery_id": {"S": f"share-deletion#{share_id}"}},
                         UpdateExpression="SET #d = :p, next_attempt_at = :t", ExpressionAttributeNames={"#d": "due"},
                         ExpressionAttributeValues={":p": {"S": "share-deletions"}, ":t": {"N": str(int(time.time()))}})
    def reported() -> bool:  # printed once the pass returns, after the record is gone
        return any(line.startswith("share_deletions: ") and "'finished': 1" in line for line in server.lines())
    deadline = time.monotonic() + 30
    while not reported():
        assert time.monotonic() < deadline, f"the local share_deletions pass did not finish the deletion:\n{server.output()}"
        time.sleep(0.2)
    assert "Item" not in dynamodb.get_item(TableName=f"{prefix}shares", Key=share_key, ConsistentRead=True)
    listed = requests.get(f"{server.url}/shares", headers=_bearer(token), timeout=30)
    assert listed.status_code == 200 and listed.json() == []

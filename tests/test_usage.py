"""GET /usage and the scheduled quota reset (invoked through chalice's test client)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib import clock as system_clock, deps
from chalicelib.services import pending_work, quota_reset
from chalicelib.services.accounts import user_id_for
from chalicelib.store import charges, ledger
from chalicelib.store.models import LedgerItem, Share, User
from tests.conftest import call

EMAIL = "owner@example.com"
SCHEDULE_EVENT = {"version": "0", "account": "123456789012", "region": "us-east-1", "detail": {},
                  "detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-12-01T00:00:00Z",
                  "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
                  "resources": ["arn:aws:events:us-east-1:123456789012:rule/quota_reset"]}


@pytest.fixture
def clock():
    """Move the clock: ``clock("2026-12-01T00:10:00")`` (UTC)."""
    def set_time(iso: str) -> datetime:
        moment = datetime.fromisoformat(iso).replace(tzinfo=timezone.utc)
        system_clock.use(lambda: moment)
        return moment
    yield set_time
    system_clock.use(None)


def invoke(client) -> dict:
    return client.lambda_.invoke("quota_reset", SCHEDULE_EVENT).payload


def run_to_completion(client, limit: int = 50) -> int:
    """Invoke the schedule until the period pass is done; returns how many invocations it took."""
    for attempt in range(1, limit + 1):
        result = invoke(client)
        if result["passes"][0]["status"] in ("completed", "already-done"):
            return attempt
    raise AssertionError("the job never finished")


def add_usage(user_id: str, period: str, count: int) -> None:
    LedgerItem(ledger.user_usage_key(user_id, period)).update(actions=[LedgerItem.count.add(count)])


def make_user(email: str, **fields) -> User:
    user = User(user_id_for(email), email=email, created_at="2026-01-01T00:00:00Z", **fields)
    user.save()
    return user


def make_pro_share(owner_id: str, share_id: str) -> None:
    Share(f"share#{share_id}", share_id=share_id, owner_id=owner_id, created_at="2026-02-01T00:00:00Z",
          slug=share_id.replace("_", "-"), status="active", password_hash="$argon2id$fake",
          webhook_url="https://hooks.example/x").save()


def archive(user_id: str, period: str) -> LedgerItem:
    return LedgerItem.get(ledger.usage_archive_key(user_id, period))


# --- GET /usage ------------------------------------------------------------------------------

def test_usage_of_a_new_free_user(client, user_token, clock):
    clock("2026-11-20T12:00:00")
    status, body, _ = call(client, "GET", "/usage", token=user_token)
    assert status == 200, body
    assert body == {"spikes": 0, "spike_limit": 100, "shares": 0, "share_limit": 5, "tier": "free",
                    "period": "2026-11", "reset_at": "2026-12-01T00:00:00Z"}


def test_usage_counts_this_period_with_limits_from_settings(client, user_token, clock, env):
    env(FREE_SPIKE_LIMIT="3", FREE_SHARE_LIMIT="2")
    clock("2026-12-31T23:59:59")
    uid = user_id_for(EMAIL)
    add_usage(uid, "2026-12", 45)
    add_usage(uid, "2026-11", 7)  # another period: not counted
    User(uid).update(actions=[User.active_shares.set(3)])
    status, body, _ = call(client, "GET", "/usage", token=user_token)
    assert status == 200
    assert (body["spikes"], body["spike_limit"], body["shares"], body["share_limit"]) == (45, 3, 3, 2)
    assert body["reset_at"] == "2027-01-01T00:00:00Z"


def test_a_tier_limit_set_to_unlimited_is_null_and_a_negative_one_is_refused(client, user_token, clock, env):
    """No environment value could make a tier unlimited (only the defaults' None), and a negative
    limit was answered by /usage, where the CLI parses limits as unsigned and fails."""
    clock("2026-11-20T12:00:00")
    env(FREE_SPIKE_LIMIT="unlimited", FREE_SHARE_LIMIT="none")
    body = call(client, "GET", "/usage", token=user_token)[1]
    assert (body["spike_limit"], body["share_limit"]) == (None, None)
    from pydantic import ValidationError
    from chalicelib.settings import Settings
    for value in ("-1", "", "many"):
        with pytest.raises(ValidationError):
            Settings(free_spike_limit=value)
    assert Settings(agent_share_limit="0").agent_share_limit == 0


def test_pro_limits_are_null_until_grace_runs_out(client, user_token, clock):
    now = clock("2026-11-20T12:00:00")
    uid = user_id_for(EMAIL)
    User(uid).update(actions=[User.tier.set("pro"), User.grace_until.set(int(now.timestamp()) + 60)])
    body = call(client, "GET", "/usage", token=user_token)[1]
    assert (body["tier"], body["spike_limit"], body["share_limit"]) == ("pro", None, None)
    clock("2026-11-20T12:01:01")
    body = call(client, "GET", "/usage", token=user_token)[1]
    assert (body["tier"], body["spike_limit"], body["share_limit"]) == ("free", 100, 5)


def test_usage_requires_a_bearer_token(client):
    status, body, _ = call(client, "GET", "/usage")
    assert status == 401 and body["code"] == "AUTH_REQUIRED"


# --- the scheduled reset ---------------------------------------------------------------------

def test_new_period_reads_zero_before_and_after_the_reset(client, user_token, clock, env):
    env(JOB_TIME_RESERVE_MS="0")
    uid = user_id_for(EMAIL)
    clock("2026-11-30T23:59:00")
    add_usage(uid, "2026-11", 45)
    assert call(client, "GET", "/usage", token=user_token)[1]["spikes"] == 45

    clock("2026-12-01T00:10:00")
    before = call(client, "GET", "/usage", token=user_token)[1]
    assert (before["spikes"], before["reset_at"]) == (0, "2027-01-01T00:00:00Z")  # the job has not run

    result = invoke(client)
    assert result["period"] == "2026-12"
    assert result["passes"][0]["status"] == "completed" and result["passes"][0]["archived"] == 1
    closed = archive(uid, "2026-11")
    assert closed.count == 45 and closed.detail["spikes"] == 45 and closed.detail["tier"] == "free"
    job = LedgerItem.get(quota_reset.period_job_key("2026-12"))
    assert job.state == "done" and job.detail["users"] == 1 and job.detail["cursor"] is None
    after = call(client, "GET", "/usage", token=user_token)[1]
    assert (after["spikes"], after["reset_at"]) == (0, "2027-01-01T00:00:00Z")


def test_running_twice_changes_nothing_the_second_time(client, user_token, clock, env):
    env(JOB_TIME_RESERVE_MS="0")
    uid = user_id_for(EMAIL)
    add_usage(uid, "2026-11", 10)
    clock("2026-12-01T00:05:00")
    assert invoke(client)["passes"][0]["status"] == "completed"
    add_usage(uid, "2026-11", 5)  # a straggler written to the closed period
    clock("2026-12-01T00:20:00")
    second = invoke(client)
    assert second["passes"][0]["status"] == "already-done"
    assert archive(uid, "2026-11").count == 10  # written once, not rewritten: bookkeeping no code reads
    assert charges.account_period(uid, "2026-11").count == 15  # the period's counter has the straggler
    assert LedgerItem.get(quota_reset.period_job_key("2026-12")).detail["users"] == 1
    # Calling the service again directly for the same period is just as harmless.
    assert quota_reset.run(deps.settings(), now=system_clock.now())["passes"][0]["status"] == "already-done"


def test_a_missed_period_start_is_caught_up_late(client, user_token, clock, env):
    # The clock jumps to February, past a session's lifetime (240) counted from today's sign-in.
    env(JOB_TIME_RESERVE_MS="0", SESSION_MAX_DAYS="365")
    uid = user_id_for(EMAIL)
    add_usage(uid, "2026-11", 12)
    clock("2026-12-20T09:00:00")  # no run since the period began
    assert call(client, "GET", "/usage", token=user_token)[1]["spikes"] == 0
    assert invoke(client)["passes"][0]["status"] == "completed"
    assert archive(uid, "2026-11").count == 12
    # A period in which the job never ran at all still starts from zero.
    clock("2027-02-03T00:00:00")
    add_usage(uid, "2027-02", 2)
    assert call(client, "GET", "/usage", token=user_token)[1]["spikes"] == 2


def test_job_is_paginated_and_resumes_from_its_checkpoint(client, clock, env):
    # Page of 2; the test Lambda context has 3 s, less than the 10 s reserve: one page per run.
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="10000")
    clock("2026-12-01T00:00:30")
    ids = [make_user(f"user{i}@example.com", tier="free").user_id for i in range(5)]
    for n, uid in enumerate(ids):
        add_usage(uid, "2026-11", n + 1)

    first = invoke(client)
    assert first["passes"] == [{"job": "job#quota-reset#2026-12", "status": "paused", "pages": 1}]
    job = LedgerItem.get(quota_reset.period_job_key("2026-12"))
    assert job.state == "running" and job.detail["cursor"] is not None and job.detail["users"] == 2

    invocations = 1 + run_to_completion(client)
    assert invocations >= 3
    job = LedgerItem.get(quota_reset.period_job_key("2026-12"))
    assert job.state == "done" and job.detail["users"] == 5 and job.detail["archived"] == 5
    assert job.detail["invocations"] == invocations
    assert sorted(archive(uid, "2026-11").count for uid in ids) == [1, 2, 3, 4, 5]


def test_a_page_reprocessed_after_a_crash_is_not_double_counted(client, clock, env):
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    ids = [make_user(f"user{i}@example.com").user_id for i in range(3)]
    for uid in ids:
        add_usage(uid, "2026-11", 4)
    # A previous run archived one user, then died before its checkpoint.
    quota_reset.archive_usage(User.get(ids[0]), "2026-11", now)
    assert invoke(client)["passes"][0]["status"] == "completed"
    job = LedgerItem.get(quota_reset.period_job_key("2026-12"))
    assert job.detail["users"] == 3 and job.detail["archived"] == 2
    assert all(archive(uid, "2026-11").count == 4 for uid in ids)


def test_job_persists_expired_grace_and_strips_pro_features(client, user_token, clock, env):
    env(JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    uid = user_id_for(EMAIL)
    User(uid).update(actions=[User.tier.set("pro"), User.subscription_status.set("past_due"),
                              User.grace_until.set(int(now.timestamp()) - 60)])
    in_grace = make_user("still@example.com", tier="pro", grace_until=int(now.timestamp()) + 3600)
    make_pro_share(uid, "sh_aaaaaaaaaaaa")
    make_pro_share(in_grace.user_id, "sh_bbbbbbbbbbbb")

    result = invoke(client)["passes"][0]
    assert (result["downgraded"], result["shares_stripped"]) == (1, 1)
    lapsed = User.get(uid)
    assert lapsed.tier == "free" and lapsed.grace_until is None
    share = Share.get("share#sh_aaaaaaaaaaaa")
    assert share.status == "locked" and share.webhook_url is None and share.slug == "sh-aaaaaaaaaaaa"
    assert User.get(in_grace.user_id).tier == "pro"
    assert Share.get("share#sh_bbbbbbbbbbbb").password_hash is not None
    assert call(client, "GET", "/usage", token=user_token)[1]["tier"] == "free"


def test_downgrade_interrupted_before_stripping_is_finished(client, clock, env):
    env(JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    user = make_user("crashed@example.com", tier="free", grace_until=int(now.timestamp()) - 60)
    make_pro_share(user.user_id, "sh_cccccccccccc")
    invoke(client)
    assert Share.get("share#sh_cccccccccccc").status == "locked"
    assert User.get(user.user_id).grace_until is None


def test_daily_sweep_persists_grace_expiry_mid_period(client, clock, env):
    env(JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    user = make_user("lapsing@example.com", tier="pro", grace_until=int(now.timestamp()) + 5 * 86400)
    make_pro_share(user.user_id, "sh_dddddddddddd")
    first = invoke(client)["passes"]
    assert [p["status"] for p in first] == ["completed", "completed"]
    assert User.get(user.user_id).tier == "pro"

    clock("2026-12-07T00:15:00")  # grace over; the period pass is long done
    passes = invoke(client)["passes"]
    assert passes[0]["status"] == "already-done"
    assert passes[1]["job"] == "job#grace-sweep#2026-12-07" and passes[1]["downgraded"] == 1
    assert User.get(user.user_id).tier == "free"
    assert Share.get("share#sh_dddddddddddd").status == "locked"
    assert invoke(client)["passes"][1]["status"] == "already-done"


def test_webhook_newer_state_wins_over_a_grace_downgrade(client, clock, env):
    """If the subscription recovered after the job read the user, the job leaves it Pro."""
    env(JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    stale = make_user("recovered@example.com", tier="pro", grace_until=int(now.timestamp()) - 60)
    User(stale.user_id).update(actions=[User.grace_until.remove(), User.subscription_status.set("active")])
    assert quota_reset.persist_grace_expiry(stale, now) == {"downgraded": 0}
    assert User.get(stale.user_id).tier == "pro"


def test_checkpointed_job_on_each_store(backend_client, clock, env):
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="10000")
    now = clock("2026-12-01T00:00:30")
    ids = [make_user(f"user{i}@example.com", tier="pro", grace_until=int(now.timestamp()) - i).user_id
           for i in range(3)]
    for uid in ids:
        add_usage(uid, "2026-11", 2)
    assert invoke(backend_client)["passes"][0]["status"] == "paused"
    run_to_completion(backend_client)
    job = LedgerItem.get(quota_reset.period_job_key("2026-12"))
    assert (job.state, job.detail["users"], job.detail["archived"], job.detail["downgraded"]) == ("done", 3, 3, 3)
    assert all(User.get(uid).tier == "free" and archive(uid, "2026-11").count == 2 for uid in ids)


# --- a downgraded user's shares, stripped a bounded page per step ------------------------------

def lapsed_owner_with_shares(now: datetime, count: int) -> tuple:
    """A Pro user whose grace period ended, owning ``count`` protected shares with webhooks
    (created one second apart), beside a free user: (the lapsed user's id, its share ids)."""
    make_user("free@example.com", tier="free")
    owner = make_user("lapsed@example.com", tier="pro", grace_until=int(now.timestamp()) - 60).user_id
    share_ids = [f"sh_lapsed{n:05d}" for n in range(count)]
    for n, share_id in enumerate(share_ids):
        Share(f"share#{share_id}", share_id=share_id, owner_id=owner, created_at=f"2026-02-01T00:00:{n:02d}Z",
              slug=share_id.replace("_", "-"), status="active", password_hash="$argon2id$fake",
              webhook_url="https://hooks.example/x").save()
    return owner, share_ids


def locked(share_ids) -> int:
    shares = [Share.get(f"share#{share_id}", consistent_read=True) for share_id in share_ids]
    assert all((share.status == "locked") == (share.webhook_url is None) for share in shares)
    return sum(share.status == "locked" for share in shares)


def test_a_user_with_more_shares_than_a_step_is_stripped_a_page_per_step(backend_client, clock, env):
    """On moto and DynamoDB Local: pages of 2, one step per invocation (the test Lambda has 3 s,
    less than the reserve). The users' page stops at the lapsed user; its 5 shares take three
    steps of their own, each checkpointed, and the pass then goes on past it."""
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="10000")
    now = clock("2026-12-01T00:00:30")
    owner, share_ids = lapsed_owner_with_shares(now, 5)
    key = quota_reset.period_job_key("2026-12")
    invoke(backend_client)  # the users' page, up to the lapsed user: downgraded, nothing stripped yet
    assert locked(share_ids) == 0
    job = LedgerItem.get(key, consistent_read=True)
    assert job.detail["downgraded"] == 1 and job.detail["stripping"]["user_id"] == owner
    for pages in (1, 2):
        assert invoke(backend_client)["passes"][0] == {"job": key, "status": "paused", "pages": 1}
        job = LedgerItem.get(key, consistent_read=True)
        assert locked(share_ids) == job.detail["shares_stripped"] == 2 * pages
        assert job.detail["stripping"]["after"] is not None and User.get(owner).grace_until is not None
    run_to_completion(backend_client)
    job = LedgerItem.get(key, consistent_read=True)
    assert (job.state, job.detail["users"], job.detail["downgraded"], job.detail["shares_stripped"]) == ("done", 2, 1, 5)
    assert locked(share_ids) == 5 and job.detail["stripping"] is None
    lapsed = User.get(owner)
    assert (lapsed.tier, lapsed.grace_until) == ("free", None)


def test_a_stripping_step_retried_or_lost_to_another_run_counts_each_share_once(client, clock, env, monkeypatch):
    """A run dies after a step's writes, before its checkpoint; another run checkpoints while
    one strips: the step is taken again (its shares already locked change nothing) or left to
    the run that checkpointed. Every share ends locked; the pass counts the 3 its checkpointed
    steps changed (like an archive, what a dead run wrote is not counted again)."""
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    _, share_ids = lapsed_owner_with_shares(now, 5)
    key = quota_reset.period_job_key("2026-12")
    real_checkpoint, real_strip = ledger.checkpoint_job, quota_reset.strip_step
    calls = []

    def dies_after_the_first_page_of_shares(job, detail, done):
        if detail.get("shares_stripped") and not calls:
            calls.append("died")
            raise RuntimeError("Lambda died here")
        return real_checkpoint(job, detail, done)
    monkeypatch.setattr(ledger, "checkpoint_job", dies_after_the_first_page_of_shares)
    with pytest.raises(RuntimeError):
        quota_reset.sweep(deps.settings(), key, now, lambda: 1e9, archive_period="2026-11")
    assert locked(share_ids) == 2 and LedgerItem.get(key).detail["shares_stripped"] == 0

    def another_run_checkpoints_meanwhile(settings, stripping, moment):
        if len(calls) == 1:
            calls.append("bumped")
            LedgerItem(key).update(actions=[LedgerItem.count.add(1)])
        return real_strip(settings, stripping, moment)
    monkeypatch.setattr(quota_reset, "strip_step", another_run_checkpoints_meanwhile)
    assert quota_reset.sweep(deps.settings(), key, now, lambda: 1e9, archive_period="2026-11")["status"] == "yielded"
    result = quota_reset.sweep(deps.settings(), key, now, lambda: 1e9, archive_period="2026-11")
    assert (result["status"], result["downgraded"], result["shares_stripped"]) == ("completed", 1, 3)
    assert locked(share_ids) == 5


# --- with POST /spikes's counters --------------------------------------------------------------

def test_spikes_recorded_show_in_usage_and_the_limit_reopens_next_period_without_the_job(
        client, user_token, clock, env):
    from chalicelib.limit_errors import SpikeLimit
    from chalicelib.services import spike_posts
    from chalicelib.services.spike_posts import NewSpike
    from tests.factories import make_share

    env(FREE_SPIKE_LIMIT="2")
    make_share(EMAIL, "mockup")
    settings = deps.settings()
    november = clock("2026-11-30T23:58:00")
    for i in range(2):
        spike_posts.record(NewSpike(type="page", project_key="mockup", client_id=f"n{i}"), settings, "http://x", now=november)
    with pytest.raises(SpikeLimit):
        spike_posts.record(NewSpike(type="page", project_key="mockup", client_id="n2"), settings, "http://x", now=november)
    body = call(client, "GET", "/usage", token=user_token)[1]
    assert (body["spikes"], body["spike_limit"], body["period"]) == (2, 2, "2026-11")

    december = clock("2026-12-01T00:00:01")  # the reset job has not run
    spike_posts.record(NewSpike(type="page", project_key="mockup", client_id="d0"), settings, "http://x", now=december)
    body = call(client, "GET", "/usage", token=user_token)[1]
    assert (body["spikes"], body["period"], body["reset_at"]) == (1, "2026-12", "2027-01-01T00:00:00Z")
    env(FREE_SPIKE_LIMIT="2", JOB_TIME_RESERVE_MS="0")
    invoke(client)
    assert archive(user_id_for(EMAIL), "2026-11").count == 2
    assert call(client, "GET", "/usage", token=user_token)[1]["spikes"] == 1


def test_overlapping_invocations_never_interleave_checkpoints(client, clock, env, monkeypatch):
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    for i in range(3):
        make_user(f"user{i}@example.com")
    key = quota_reset.period_job_key("2026-12")
    real = quota_reset.persist_grace_expiry
    bumped = []

    def other_invocation_checkpoints_meanwhile(user, moment):
        if not bumped:
            LedgerItem(key).update(actions=[LedgerItem.count.add(1)])
            bumped.append(True)
        return real(user, moment)
    monkeypatch.setattr(quota_reset, "persist_grace_expiry", other_invocation_checkpoints_meanwhile)
    result = quota_reset.sweep(deps.settings(), key, now, lambda: 1e9, archive_period="2026-11")
    assert result["status"] == "yielded"
    job = LedgerItem.get(key)
    assert job.state == "running" and job.detail["cursor"] is None and job.detail["users"] == 0


# --- one user's work that keeps failing --------------------------------------------------------

class BadUserData(Exception):
    """A bug, or one user's item no step can handle: raised every time that user's turn comes."""


def failing_for_users(monkeypatch, name, bad):
    real = getattr(quota_reset, name)

    def patched(*args, **kwargs):  # archive_usage(user, ...), strip_step(settings, stripping, ...)
        user_id = args[1]["user_id"] if name == "strip_step" else args[0].user_id
        if user_id in bad or "*" in bad:
            raise BadUserData(f"cannot handle {user_id}")
        return real(*args, **kwargs)
    monkeypatch.setattr(quota_reset, name, patched)


def test_a_user_whose_work_keeps_failing_does_not_hold_up_everyone_after_it(client, clock, env, monkeypatch):
    """A pass stopped at the first user whose work raised, and every invocation raised there
    again: nobody after that user was archived, no lapsed subscription was downgraded, and the
    daily sweep (which runs only after the period pass) never ran, so lapsed accounts kept their
    webhooks. The user is logged and counted, the pass goes on; the next sweep tries it again."""
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    ids = [make_user(f"user{i}@example.com", tier="free").user_id for i in range(4)]
    for uid in ids:
        add_usage(uid, "2026-11", 3)
    lapsed = make_user("lapsed@example.com", tier="pro", grace_until=int(now.timestamp()) - 60)
    make_pro_share(lapsed.user_id, "sh_eeeeeeeeeeee")
    failing_for_users(monkeypatch, "archive_usage", {ids[1]})

    passes = quota_reset.run(deps.settings(), now=now)["passes"]
    assert [p["status"] for p in passes] == ["completed", "completed"]
    assert (passes[0]["users"], passes[0]["archived"], passes[0]["failed"]) == (5, 4, 1)
    assert all(archive(uid, "2026-11").count == 3 for uid in ids if uid != ids[1])
    assert User.get(lapsed.user_id).tier == "free" and Share.get("share#sh_eeeeeeeeeeee").status == "locked"


def test_a_stripping_that_keeps_failing_is_left_to_the_next_sweep(client, clock, env, monkeypatch):
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    stuck = make_user("stuck@example.com", tier="pro", grace_until=int(now.timestamp()) - 60)
    other = make_user("other@example.com", tier="pro", grace_until=int(now.timestamp()) - 60)
    make_pro_share(stuck.user_id, "sh_ffffffffffff")
    make_pro_share(other.user_id, "sh_gggggggggggg")
    bad = {stuck.user_id}
    failing_for_users(monkeypatch, "strip_step", bad)

    passes = quota_reset.run(deps.settings(), now=now)["passes"]
    assert [p["status"] for p in passes] == ["completed", "completed"] and passes[0]["failed"] == 1
    assert Share.get("share#sh_gggggggggggg").status == "locked" and User.get(other.user_id).grace_until is None
    # Downgraded, its shares not stripped yet: "free with an expired grace_until" until a sweep can.
    assert User.get(stuck.user_id).tier == "free" and User.get(stuck.user_id).grace_until is not None
    bad.clear()
    clock("2026-12-02T00:00:30")
    assert quota_reset.run(deps.settings())["passes"][1]["shares_stripped"] == 1
    assert Share.get("share#sh_ffffffffffff").status == "locked" and User.get(stuck.user_id).grace_until is None


def test_users_failing_one_after_another_stop_the_pass_instead_of_skipping_everyone(client, clock, env, monkeypatch):
    """Something every user's work shares is broken (a bug, a missing permission): the pass must
    not skip them all and call the period done; it stops and the next invocation tries again."""
    env(JOB_PAGE_SIZE="2", JOB_TIME_RESERVE_MS="0")
    now = clock("2026-12-01T00:00:30")
    ids = [make_user(f"user{i}@example.com").user_id for i in range(5)]
    for uid in ids:
        add_usage(uid, "2026-11", 2)
    bad = {"*"}
    failing_for_users(monkeypatch, "archive_usage", bad)
    with pytest.raises(BadUserData):
        quota_reset.run(deps.settings(), now=now)
    assert LedgerItem.get(quota_reset.period_job_key("2026-12")).state == "running"
    bad.clear()  # the fix deployed: the pass goes on from its checkpoint
    assert quota_reset.run(deps.settings(), now=now)["passes"][0]["status"] == "completed"
    # Skipped before the pass could tell: the ones failing in a row before it stopped, no more.
    missing = [uid for uid in ids if not list(LedgerItem.batch_get([ledger.usage_archive_key(uid, "2026-11")]))]
    assert len(missing) == pending_work.FAILURES_IN_A_ROW - 1

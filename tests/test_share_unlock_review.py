"""An attacker's review of password-protected shares (docs/security.md, 156 on)."""
from __future__ import annotations

from tests.conftest import call
from tests.test_shares import make_pro, share_site


def _guarded(client, token, name="Guarded", password="open sesame") -> dict:
    make_pro("owner@example.com")
    return share_site(client, token, name, password=password)


# --- 156. A guesser with many addresses is limited per share -----------------------------------

def test_password_guesses_from_many_addresses_are_limited_per_share(client, env, user_token, from_network):
    env(RATE_PASSWORD_PER_MINUTE="5", RATE_PASSWORD_PER_SHARE_PER_MINUTE="12")
    share = _guarded(client, user_token)
    other = _guarded(client, user_token, "Other", password="other")
    answers = []
    for network in range(3):  # three networks, each within its own limit of 5
        from_network(f"198.51.100.{network + 1}")
        answers += [call(client, "GET", f"/s/{share['slug']}/css/site.css?pw=guess{network}-{n}") for n in range(5)]
    assert [status for status, _, _ in answers] == [401] * 12 + [429] * 3
    # Each guesser is told its own address's limit, not what others used of the share's budget.
    assert [(h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"]) for _, _, h in answers[:2]] == [("5", "4"), ("5", "3")]
    # Every address now, with the right password too: the answer tells no right guess from a wrong one.
    from_network("203.0.113.9")
    status, body, headers = call(client, "GET", f"/s/{share['slug']}/css/site.css?pw=open%20sesame")
    assert (status, body["code"]) == (429, "RATE_LIMIT") and int(headers["Retry-After"]) >= 1
    assert call(client, "GET", f"/spikes?project={share['slug']}", headers={"X-Share-Password": "open sesame"})[0] == 429
    # Another share has its own budget.
    assert call(client, "GET", f"/s/{other['slug']}/?pw=other")[0] == 200


def test_the_share_wide_password_limit_defaults_above_a_few_networks(env):
    from chalicelib import deps
    env()
    settings = deps.settings()
    assert settings.rate_password_per_share_per_minute == 60 >= 10 * settings.rate_password_per_minute


# --- 157. A stranger with a protected share's slug cannot post to it ---------------------------

def _post(client, project_key, token=None, comments="spam"):
    return call(client, "POST", "/spikes", {"type": "page", "projectKey": project_key, "comments": comments},
                token=token)


def _owners_feedback(client, token, share) -> list:
    status, listed, _ = call(client, "GET", f"/spikes?project={share['share_id']}", token=token)
    assert status == 200, listed
    return sorted(spike["comments"] for spike in listed["data"])


def test_a_protected_share_takes_posts_by_slug_only_from_its_owner(client, user_token):
    from tests.conftest import sign_in
    share = _guarded(client, user_token)
    status, body, _ = _post(client, share["slug"])
    assert (status, body["code"]) == (404, "NOT_FOUND")  # as its feedback listing answers a stranger
    assert "by its id" in body["error"]  # what a poster holding only the address can do instead
    other = sign_in(client, "other@example.com")
    assert _post(client, share["slug"], token=other)[0] == 404
    # The widget on its page posts by the share's id, which only the page (behind the password) holds.
    assert _post(client, share["share_id"], comments="from the page")[0] == 201
    assert _post(client, share["slug"], token=user_token, comments="by the owner")[0] == 201
    assert _owners_feedback(client, user_token, share) == ["by the owner", "from the page"]


def test_a_password_set_after_a_post_by_slug_guards_the_next_one(client, user_token):
    from chalicelib.services import targets
    from chalicelib.store.models import Share
    make_pro("owner@example.com")
    share = share_site(client, user_token, "Open for now")
    assert _post(client, share["slug"], comments="while public")[0] == 201  # this function remembers it public
    # Protected elsewhere (another function, or the dashboard): this function's memory is stale.
    Share.get(f"share#{share['share_id']}").update(actions=[Share.password_hash.set("$argon2id$not-checked-here")])
    assert _post(client, share["slug"])[0] == 404
    targets.forget()  # a cold function: the slug's claim hints at the share, not at its password
    assert _post(client, share["slug"])[0] == 404
    assert _owners_feedback(client, user_token, share) == ["while public"]


# --- 158. A cookie of the same name planted before the unlock cookie does not hide it ----------

def test_a_planted_unlock_cookie_first_in_the_header_does_not_hide_the_real_one(client, user_token):
    share = _guarded(client, user_token)
    answer = client.http.request("GET", f"/s/{share['slug']}/?pw=open%20sesame", headers={"Accept": "*/*"})
    real = answer.headers["Set-Cookie"].split(";", 1)[0]
    # What a sibling subdomain can set for the parent domain and this path: browsers send it
    # first when it is older than the real one.
    for planted in ("spikes_unlock=1.forged", "spikes_unlock=", 'spikes_unlock="9999999999.x"'):
        for header in (f"{planted}; {real}", f"{real}; {planted}"):
            response = client.http.request("GET", f"/s/{share['slug']}/index.html",
                                           headers={"Accept": "*/*", "Cookie": header})
            assert response.status_code == 200 and b"<h1>Hi</h1>" in response.body, header
    response = client.http.request("GET", f"/s/{share['slug']}/index.html",
                                   headers={"Accept": "*/*", "Cookie": "spikes_unlock=1.forged"})
    assert response.status_code == 401


# --- A person refused by the password's limits gets the form back, told how long to wait -------

def test_a_rate_limited_password_form_answers_with_the_form_and_the_wait(client, user_token):
    share = _guarded(client, user_token)
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html", "Sec-Fetch-Dest": "document"}
    for n in range(5):
        assert client.http.request("POST", f"/s/{share['slug']}/", body=f"password=guess{n}".encode(),
                                   headers=form).status_code == 401
    response = client.http.request("POST", f"/s/{share['slug']}/", body=b"password=open+sesame", headers=form)
    assert response.status_code == 429 and response.headers["Content-Type"].startswith("text/html")
    assert int(response.headers["Retry-After"]) >= 1 and response.headers["Content-Security-Policy"].startswith("sandbox")
    assert b'name="password"' in response.body and b"Too many password attempts. Try again in " in response.body
    # A script's or an image's request still gets the JSON envelope.
    status, body, _ = call(client, "GET", f"/s/{share['slug']}/css/site.css?pw=guess")
    assert (status, body["code"]) == (429, "RATE_LIMIT")

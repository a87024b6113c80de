"""A protected share's proofs of its password are renewed while used, but never past an absolute
lifetime counted from when the password was given (docs/security.md, 165)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import clock
from tests.conftest import call
from tests.test_serving import access_root, cookie_from, get, protected

HOUR = timedelta(hours=1)
NAVIGATION = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


@pytest.fixture
def at():
    """Serve the following requests at ``start + offset`` (the proofs read ``chalicelib.clock``)."""
    start = datetime.now(timezone.utc)

    def move(offset: timedelta) -> None:
        clock.use(lambda: start + offset)
    move(timedelta(0))
    yield move
    clock.use(None)


def _unlock(client, slug: str):
    """What a viewer holds after giving the password: the cookie and the page's access root."""
    _, _, headers = get(client, f"/s/{slug}/?pw=open%20sesame")
    status, page, _ = get(client, f"/s/{slug}/", {"Cookie": cookie_from(headers)})
    assert status == 200
    return cookie_from(headers), access_root(page)


def _renew(client, slug: str, cookie: str, root: str):
    """A page served to the proofs held: the renewed access root, and the cookie a navigation
    under the access path sets."""
    status, page, _ = get(client, f"{root}index.html")
    assert status == 200, page
    status, _, headers = get(client, f"{root}docs/index.html", NAVIGATION)
    assert status == 302 and "Set-Cookie" in headers
    return cookie_from(headers), access_root(page)


def test_a_viewer_working_through_the_day_is_not_asked_again(client, user_token, at):
    share = protected(client, user_token)
    cookie, root = _unlock(client, share["slug"])
    for hours in (8, 16, 23):  # each visit within 12 hours of the last, all within a day of the password
        at(hours * HOUR)
        cookie, root = _renew(client, share["slug"], cookie, root)
        assert get(client, f"{root}css/site.css")[0] == 200
        assert get(client, f"/s/{share['slug']}/", {"Cookie": cookie, **NAVIGATION})[0] == 200


def test_a_proof_renewed_without_end_stops_working_a_day_after_the_password(client, user_token, at):
    share = protected(client, user_token)
    cookie, root = _unlock(client, share["slug"])
    for hours in range(4, 24, 4):  # someone who found an access path uses it every 4 hours
        at(hours * HOUR)
        cookie, root = _renew(client, share["slug"], cookie, root)
    # The renewed proofs end where the first one's lifetime does, not 12 hours after the last use.
    issued, expires, _ = root.rstrip("/").rsplit("~u.", 1)[1].split(".")
    assert int(expires) == int(issued) + 24 * 3600
    at(24 * HOUR + timedelta(seconds=1))
    status, data, _ = call(client, "GET", f"{root}css/site.css")
    assert (status, data["code"]) == (401, "AUTH_REQUIRED")
    status, page, headers = get(client, f"/s/{share['slug']}/", {"Cookie": cookie, **NAVIGATION})
    assert status == 401 and b'name="password"' in page and "Set-Cookie" not in headers
    status, page, _ = get(client, f"{root}docs/index.html", NAVIGATION)
    assert status == 401 and b'name="password"' in page
    # The password itself opens it again, for another day.
    cookie, root = _unlock(client, share["slug"])
    assert get(client, f"{root}css/site.css")[0] == 200


def test_the_lifetime_is_a_setting_and_lowering_it_shortens_proofs_already_out(client, user_token, at, env):
    share = protected(client, user_token)
    cookie, root = _unlock(client, share["slug"])
    env(SHARE_UNLOCK_MAX_HOURS="2")
    at(2 * HOUR + timedelta(seconds=1))
    assert get(client, f"{root}css/site.css")[0] == 401
    assert get(client, f"/s/{share['slug']}/css/site.css", {"Cookie": cookie})[0] == 401
    at(timedelta(0))
    cookie, _ = _unlock(client, share["slug"])
    assert "Max-Age=7200;" in get(client, f"/s/{share['slug']}/?pw=open%20sesame")[2]["Set-Cookie"]


def test_a_changed_password_voids_renewed_proofs(client, user_token, at):
    from chalicelib.store.models import Share
    share = protected(client, user_token)
    cookie, root = _unlock(client, share["slug"])
    at(6 * HOUR)
    cookie, root = _renew(client, share["slug"], cookie, root)
    Share.get(f"share#{share['share_id']}").update(actions=[Share.password_version.add(1)])
    assert get(client, f"{root}css/site.css")[0] == 401
    assert get(client, f"/s/{share['slug']}/css/site.css", {"Cookie": cookie})[0] == 401


def test_proofs_of_the_earlier_shape_are_refused(client, user_token):
    """``<expires>.<signature>``, valid before the lifetime existed, carried no time of the
    password: refused, so a viewer holding one gives the password once more."""
    from chalicelib import deps
    from chalicelib.crypto import sign
    from chalicelib.store.models import Share
    share = protected(client, user_token)
    version = int(Share.get(f"share#{share['share_id']}").password_version or 0)
    expires = int(clock.epoch()) + 3600
    message = f"unlock|{share['share_id']}|{version}|{expires}"
    earlier = f"{expires}.{sign(deps.settings().secret_key.get_secret_value(), message)}"
    assert get(client, f"/s/{share['slug']}/~u.{earlier}/css/site.css")[0] == 401
    assert get(client, f"/s/{share['slug']}/css/site.css", {"Cookie": f"spikes_unlock={earlier}"})[0] == 401


# --- 166. A file opened in its own tab does not show its access path ----------------------------

@pytest.mark.parametrize("navigation", [{"Sec-Fetch-Dest": "document", "Accept": "text/html,*/*;q=0.8"},
                                        {"Accept": "text/html,image/*;q=0.8,*/*;q=0.5"}],
                         ids=["fetch-metadata", "without-fetch-metadata"])
@pytest.mark.parametrize("file", ["assets/img/logo.png", "img/icon.svg", "css/site.css"])
def test_a_file_opened_in_its_own_tab_moves_to_the_clean_address(client, user_token, navigation, file):
    """"Open image in new tab" on a protected page: the address bar would hold the access path,
    which the viewer then copies into a chat."""
    share = protected(client, user_token)
    _, root = _unlock(client, share["slug"])
    status, _, headers = get(client, f"{root}{file}", navigation)
    assert status == 302 and headers["Location"].endswith(f"/s/{share['slug']}/{file}")
    assert "~u." not in headers["Location"] and headers["Set-Cookie"].startswith("spikes_unlock=")
    status, _, _ = get(client, headers["Location"], {**navigation, "Cookie": cookie_from(headers)})
    assert status == 200
    # The page's own requests for it still load through the access path.
    assert get(client, f"{root}{file}", {"Sec-Fetch-Dest": "image"})[0] == 200

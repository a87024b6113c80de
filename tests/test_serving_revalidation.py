"""If-None-Match on the answers the function serves itself (RFC 9110 §13.1.2): a list of tags,
`*` and weak tags (`W/"…"`, what caches and proxies that alter a body send back) revalidate to
`304` by the weak comparison; If-Range stays strong (tests/test_serving_ranges.py)."""
from __future__ import annotations

import pytest

from chalicelib.services import entity_tags
from tests.test_serving import cookie_from, get, protected, site

FILES = ("css/site.css", "assets/img/logo.png", "")  # a text file, a binary file, a page


@pytest.fixture
def served(client, user_token):
    slug = site(client, user_token)["slug"]
    return slug, {path: get(client, f"/s/{slug}/{path}")[2]["ETag"] for path in FILES}


@pytest.mark.parametrize("path", FILES)
@pytest.mark.parametrize("form", [
    '{tag}', 'W/{tag}', '"other", {tag}', '{tag}, "other"', 'W/"other",W/{tag}', '"a,b" , , {tag}', '*', ' * ',
])
def test_each_form_of_if_none_match_that_names_the_file_is_a_304(client, served, path, form):
    slug, tags = served
    status, data, headers = get(client, f"/s/{slug}/{path}", {"If-None-Match": form.format(tag=tags[path])})
    assert (status, data, headers["ETag"]) == (304, b"", tags[path])


@pytest.mark.parametrize("path", FILES)
@pytest.mark.parametrize("form", [
    '"other"', 'W/"other"', '"other", W/"another"', '"a,b"', '{bare}', '{tag} junk', '"{bare}', '', ',',
])
def test_if_none_match_that_names_another_file_gets_the_file(client, served, path, form):
    slug, tags = served
    whole = get(client, f"/s/{slug}/{path}")[1]
    header = form.format(tag=tags[path], bare=tags[path].strip('"'))
    status, data, headers = get(client, f"/s/{slug}/{path}", {"If-None-Match": header})
    assert (status, data, headers["ETag"]) == (200, whole, tags[path])


def test_a_weak_tag_never_keeps_a_range(client, served):
    slug, tags = served
    path = f"/s/{slug}/assets/img/logo.png"
    assert get(client, path, {"Range": "bytes=0-3", "If-Range": tags["assets/img/logo.png"]})[0] == 206
    assert get(client, path, {"Range": "bytes=0-3", "If-Range": "W/" + tags["assets/img/logo.png"]})[0] == 200
    # A weak If-None-Match still revalidates before the range is looked at.
    assert get(client, path, {"Range": "bytes=0-3", "If-None-Match": "W/" + tags["assets/img/logo.png"]})[0] == 304


def test_star_does_not_revalidate_an_answer_without_a_tag(client, user_token):
    """A protected page carries an access path that changes with every answer and no ETag: it is
    always sent fresh, whatever the client holds."""
    slug = protected(client, user_token)["slug"]
    cookie = cookie_from(get(client, f"/s/{slug}/?pw=open%20sesame")[2])
    status, page, headers = get(client, f"/s/{slug}/", {"Cookie": cookie, "If-None-Match": "*"})
    assert status == 200 and b"<html" in page.lower() and "ETag" not in headers


@pytest.mark.parametrize("header,etag,matched", [
    ('"x"', '"x"', True), ('W/"x"', '"x"', True), ('"x"', 'W/"x"', True), ('W/"x"', 'W/"x"', True),
    ('"y", "x"', '"x"', True), ('"x,y"', '"x"', False), ('"x,y"', '"x,y"', True), ('*', '"x"', True),
    ('*', '', False), ('"x"', '', False), (None, '"x"', False), ('x', '"x"', False), ('"x" "y"', '"x"', False),
    ('W/ "x"', '"x"', False), ('w/"x"', '"x"', False), ('"x', '"x"', False), (', ,"x",', '"x"', True),
])
def test_if_none_match_comparison(header, etag, matched):
    assert entity_tags.revalidates(header, etag) is matched

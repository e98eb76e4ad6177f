"""Explore, search and the edit page's tags: sections that do not repeat, ranked and highlighted
search with a tag filter, and tags set by owners."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from marketplace.catalog.models import Model
from marketplace.catalog.tags import set_tags
from tests.factories import cpu, private, publish

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_remembered_tags() -> None:
    cache.clear()


def cards(html: str) -> list[str]:
    return re.findall(r'<li class="card">.*?<a href="/([^"]+)">', html, flags=re.S)


def test_explore_sections_do_not_repeat_models(client: Client, user: Any) -> None:
    for i in range(5):
        Model.objects.create(
            owner=user.account, name=f"m{i}", default_hardware=cpu(), run_count=i, featured=i == 4
        )
    html = client.get("/").content.decode()
    shown = cards(html)
    assert sorted(shown) == [f"alice/m{i}" for i in range(5)]  # each once
    assert shown[0] == "alice/m4"  # featured first


def test_search_is_ranked_highlighted_and_filtered_by_tag(
    client: Client, alice_client: Client, user: Any
) -> None:
    hello = publish(user, "hello")
    stream = publish(user, "text-stream")
    Model.objects.filter(pk=stream.model_id).update(description="Streams words, then hello")
    Model.objects.get(pk=stream.model_id).save()
    set_tags(Model.objects.get(pk=stream.model_id), ["streaming"])
    secret = private(publish(user, "input-types", "hello-private"))
    html = client.get("/search", {"q": "hello"}).content.decode()
    assert cards(html) == ["alice/hello", "alice/text-stream"]
    assert "<mark>hello</mark>" in html and "most relevant first" in html
    assert "hello-private" not in html
    assert "alice/hello-private" in cards(alice_client.get("/search?q=hello").content.decode())
    tagged = client.get("/search", {"tag": "streaming"}).content.decode()
    assert cards(tagged) == ["alice/text-stream"]
    explore = client.get("/").content.decode()
    assert 'href="/?tag=streaming"' in explore
    assert hello.model.full_name in cards(explore) and secret.model.name not in explore
    # Explore filters its sections by tag.
    assert cards(client.get("/", {"tag": "streaming"}).content.decode()) == ["alice/text-stream"]


def test_owners_set_tags_on_the_edit_page(alice_client: Client, user: Any) -> None:
    publish(user, "hello")
    form = {"description": "d", "readme": "", "visibility": "public", "tags": "greeting, Text"}
    assert alice_client.post("/alice/hello/edit", form).status_code == 302
    model = Model.objects.get(name="hello")
    assert sorted(model.tags.values_list("name", flat=True)) == ["greeting", "text"]
    page = alice_client.get("/alice/hello/edit").content.decode()
    assert 'value="greeting, text"' in page
    assert 'href="/search?tag=greeting"' in alice_client.get("/alice/hello").content.decode()
    bad = alice_client.post("/alice/hello/edit", {**form, "tags": "no spaces!"})
    assert bad.status_code == 200 and "use lowercase letters" in bad.content.decode()
    assert sorted(model.tags.values_list("name", flat=True)) == ["greeting", "text"]

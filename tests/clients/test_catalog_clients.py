"""The official clients (Python 1.0.7, JS 1.4.0) on the catalog: ``models.search`` is ranked,
``models.create(cover_image_url=…)`` shows the cover, and a deployment updated to
``max_instances=0`` is offline (release +1, predictions refused until it is back)."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ReplicateError

from marketplace.catalog.models import Model
from tests.api.test_catalog_search import ImageServer
from tests.factories import publish, token_for

pytestmark = pytest.mark.django_db(transaction=True)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), "orange").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_search_covers_and_offline_deployments_through_both_clients(
    start_web: Any, user: Any, js_client: Path
) -> None:
    hello = publish(user, "hello")
    stream = publish(user, "text-stream")
    Model.objects.filter(pk=stream.model_id).update(readme="Then it says hello.")
    Model.objects.get(pk=stream.model_id).save()  # reindexed
    images = ImageServer({"/cover.png": (200, "image/png", png(), {})})
    web = start_web()
    token = token_for(user)
    client = replicate.Client(api_token=token, base_url=web.url)

    # Ranked: the name match before the README match, whatever the run counts.
    Model.objects.filter(pk=stream.model_id).update(run_count=1000)
    assert [m.name for m in client.models.search("hello").results] == ["hello", "text-stream"]

    model = client.models.create(
        "alice", "py-cover", visibility="public", hardware="cpu",
        cover_image_url=f"{images.url}/cover.png",
    )  # fmt: skip
    assert model.cover_image_url and model.cover_image_url.startswith(f"{web.url}/files/covers/")
    cover = httpx.get(model.cover_image_url)
    assert cover.status_code == 200 and Image.open(io.BytesIO(cover.content)).size == (24, 16)
    assert client.models.get("alice/py-cover").cover_image_url == model.cover_image_url

    client.deployments.create(
        name="greeter", model="alice/hello", version=hello.pk, hardware="cpu",
        min_instances=0, max_instances=1,
    )  # fmt: skip
    offline = client.deployments.update("alice", "greeter", max_instances=0)
    assert offline.current_release is not None and offline.current_release.number == 2
    assert offline.current_release.configuration.max_instances == 0
    with pytest.raises(ReplicateError) as refused:
        client.deployments.predictions.create("alice/greeter", input={"text": "x"})
    assert refused.value.status == 409 and "offline" in str(refused.value.detail)
    client.deployments.update("alice", "greeter", max_instances=1)
    again = client.deployments.predictions.create("alice/greeter", input={"text": "x"})
    assert again.status == "starting"

    client.deployments.create(
        name="js-greeter", model="alice/hello", version=hello.pk, hardware="cpu",
        min_instances=0, max_instances=1,
    )  # fmt: skip
    config = {
        "baseUrl": web.url,
        "token": token,
        "owner": "alice",
        "query": "hello",
        "coverUrl": f"{images.url}/cover.png",
        "deployment": "js-greeter",
    }
    result = subprocess.run(
        ["node", "catalog_check.mjs"],
        cwd=js_client,
        env={"MK_CONFIG": json.dumps(config), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    js = json.loads(result.stdout or "{}")
    assert result.returncode == 0 and "error" not in js, (js.get("error"), result.stderr)
    assert js["search"][:2] == ["hello", "text-stream"]
    assert js["cover"].startswith(f"{web.url}/files/covers/") and js["coverStatus"] == 200
    assert js["offline"] == {"hardware": "cpu", "min_instances": 0, "max_instances": 0}
    assert js["refused"] == 409

"""Output files on an S3 that refuses a presigned request carrying ``Authorization`` too (as
AWS S3 does, and moto alone does not): with ``STORAGE_BACKEND=s3`` and the default settings,
the official Python client's ``FileOutput.read()`` (which sends the API token with every file
it reads), the JS client's ``fetch`` and a browser all get the image."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import replicate
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image
from replicate.helpers import FileOutput

from marketplace import storage
from marketplace.predictions.models import Prediction
from marketplace.s3config import s3_storage
from tests.browser.conftest import browser, page, shot  # noqa: F401  (fixtures)
from tests.factories import publish, token_for
from tests.storage.conftest import CREDENTIALS, Bucket
from tests.storage.refusing_proxy import RefusingS3Proxy

pytestmark = pytest.mark.django_db(transaction=True)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def refusing_bucket(s3_server: str, settings: Any) -> Iterator[tuple[Bucket, RefusingS3Proxy]]:
    """A fresh bucket reached through the refusing proxy, by this process and its children."""
    bucket = Bucket(s3_server, f"test-{uuid.uuid4().hex[:12]}")
    proxy = RefusingS3Proxy(s3_server)
    settings.STORAGE_BACKEND = "s3"
    settings.S3_PRIVATE_STREAM = False
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket=bucket.name,
            endpoint_url=proxy.url,
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            ttl=settings.SIGNED_URL_TTL,
        ),
    }
    yield bucket, proxy
    proxy.close()


def test_the_proxy_refuses_two_auth_mechanisms_like_s3(
    refusing_bucket: tuple[Bucket, RefusingS3Proxy],
) -> None:
    _, proxy = refusing_bucket
    name = default_storage.save("outputs/p1/token/a.txt", ContentFile(b"abc"))
    presigned = storage.presigned_url(name, 60)
    assert presigned.startswith(proxy.url)
    assert httpx.get(presigned).content == b"abc"
    refused = httpx.get(presigned, headers={"Authorization": "Bearer r8_token"})
    assert refused.status_code == 400 and b"Only one auth mechanism" in refused.content


@pytest.mark.slow
def test_clients_and_browsers_read_outputs_from_a_refusing_s3(
    start_web: Any,
    start_agent: Any,
    user: Any,
    refusing_bucket: tuple[Bucket, RefusingS3Proxy],
    page: Any,  # noqa: F811
) -> None:
    bucket, proxy = refusing_bucket
    env = {**CREDENTIALS, "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket.name}
    env |= {"S3_ENDPOINT_URL": proxy.url, "S3_REGION": "us-east-1"}
    publish(user, "image-filter")
    web = start_web(**env)
    start_agent(PUBLIC_URL=web.url, **env)
    token = token_for(user)
    client = replicate.Client(api_token=token, base_url=web.url)

    # The client uploads the input (files.create), the model server downloads it from the
    # bucket, the output goes back into the bucket.
    output = client.run(
        "alice/image-filter",
        input={"image": io.BytesIO(png_bytes()), "filter": "invert", "size": 40},
    )
    output_url = str(output)
    assert output_url.startswith(f"{web.url}/files/outputs/") and "signature=" in output_url

    # What the Python client does with a file output: GET it with the API token attached.
    # (It wraps https: URLs in FileOutput by itself; this stack serves http on loopback.)
    data = FileOutput(output_url, client).read()
    image = Image.open(io.BytesIO(data))
    assert image.size == (40, 30) and image.getpixel((0, 0))[0] < 100  # inverted red

    # The previous default, a presigned bucket URL in the API, fails that same read here.
    name = storage.name_of(output_url)
    assert name is not None
    with pytest.raises(httpx.HTTPStatusError) as refused:
        FileOutput(storage.presigned_url(name, 60), client).read()
    assert refused.value.response.status_code == 400 and proxy.refused

    # Without credentials (the JS client, browsers) the app redirects to the bucket.
    first = httpx.get(output_url)
    assert first.status_code == 302
    assert first.headers["location"].startswith(f"{proxy.url}/{bucket.name}/{name}?")
    assert httpx.get(output_url, follow_redirects=True).content == data
    script = (
        "fetch(process.argv[1]).then(async r => console.log(JSON.stringify("
        "{status: r.status, bytes: (await r.arrayBuffer()).byteLength})))"
    )
    js = subprocess.run(
        ["node", "-e", script, output_url], capture_output=True, text=True, timeout=60
    )
    assert json.loads(js.stdout) == {"status": 200, "bytes": len(data)}, js.stderr

    # A browser: the featured example's output is the model's card picture on explore.
    Prediction.objects.filter(model__name="image-filter").update(is_example=True)
    page.goto(web.url + "/")
    card = page.locator("li.card", has_text="alice/image-filter").locator("img")
    src = card.get_attribute("src")
    assert urlsplit(src).path.startswith("/files/outputs/")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=card.element_handle())
    assert card.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [40, 30]
    shot(page, "explore-card-from-refusing-s3")
    assert any(bucket.name in path for path in proxy.served)

"""A 200 MB upload streams through the web process into the bucket: its peak memory (VmHWM)
grows by at most a few tens of MB."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import token_for
from tests.storage.conftest import Bucket

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 200 * 1024**2
CHUNK = 1024**2


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def multipart(boundary: str, filename: str, size: int) -> tuple[Iterator[bytes], int, str]:
    """A multipart body generated on the fly (never in memory), its length and sha256."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    digest = hashlib.sha256()
    block = bytes(range(256)) * (CHUNK // 256)
    for _ in range(size // CHUNK):
        digest.update(block)

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(size // CHUNK):
            yield block
        yield tail

    return body(), len(head) + size + len(tail), digest.hexdigest()


@pytest.mark.slow
def test_a_200_mb_upload_streams_to_the_bucket(
    start_web: Any, user: Any, s3_bucket: Bucket
) -> None:
    web = start_web(FILES_MAX_BYTES=str(300 * 1024**2), **s3_bucket.env)
    assert web.process is not None
    auth = {"Authorization": f"Bearer {token_for(user)}"}
    # Warm up: the first upload imports boto3 and opens the S3 client.
    small = httpx.post(
        f"{web.url}/v1/files", headers=auth, files={"content": ("s.bin", b"x" * 1000)}
    )
    assert small.status_code == 201, small.text
    before = peak_rss_mb(web.process.pid)

    boundary = "marketplace-test-boundary"
    body, length, sha256 = multipart(boundary, "big.bin", SIZE)
    response = httpx.post(
        f"{web.url}/v1/files",
        headers={
            **auth,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(length),
        },
        content=body,
        timeout=300,
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == SIZE
    assert response.json()["checksums"]["sha256"] == sha256
    after = peak_rss_mb(web.process.pid)
    key = next(k for k in s3_bucket.object_keys() if k.endswith("/big.bin"))
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)
    assert head["ContentLength"] == SIZE
    print(f"web VmHWM before {before:.1f} MB, after the 200 MB upload {after:.1f} MB")
    assert after - before < 60, f"peak RSS grew by {after - before:.1f} MB"

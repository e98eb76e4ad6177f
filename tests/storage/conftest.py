"""A loopback S3-compatible server (moto's server mode, a separate process) for the storage tests,
and a per-test bucket that this process and the web/agent processes it starts all use."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from marketplace.s3config import s3_storage
from tests.conftest import wait_for
from workers.runtimes.base import free_port

CREDENTIALS = {"S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = Path(tmp_path_factory.mktemp("moto")) / "moto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"moto server exited:\n{log.read_text()}")
        try:
            return httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=30, message="the moto S3 server")
    yield url
    process.terminate()
    process.wait(timeout=10)


class Bucket:
    def __init__(self, endpoint: str, name: str):
        self.endpoint = endpoint
        self.name = name
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.client.create_bucket(Bucket=name)

    @property
    def env(self) -> dict[str, str]:
        """The settings a child process needs to use this bucket."""
        return {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": self.name,
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": "us-east-1",
            **CREDENTIALS,
        }

    def object_keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name)
        return [item["Key"] for item in listing.get("Contents", [])]

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return body


@pytest.fixture
def s3_bucket(s3_server: str, settings: Any) -> Bucket:
    """A fresh bucket, and this process's default storage pointed at it."""
    bucket = Bucket(s3_server, f"test-{uuid.uuid4().hex[:12]}")
    settings.STORAGE_BACKEND = "s3"
    settings.S3_PRIVATE_STREAM = False
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket=bucket.name,
            endpoint_url=s3_server,
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            ttl=settings.SIGNED_URL_TTL,
        ),
    }
    return bucket

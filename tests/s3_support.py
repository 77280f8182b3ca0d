"""A real S3-compatible server for tests: moto's threaded server on an ephemeral loopback port.

Not a mock of the client: batchtts talks to it over HTTP with botocore, as it would to S3.
Buckets are versioned, so a test can count how many times each object was written.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

#: The secret key every test run uses: tests grep all output for it.
SECRET_KEY = "s3cr3t-KEY-material-0123456789abcdefXYZ"
ACCESS_KEY = "AKIATESTBATCHTTS0001"


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str]
    client: Any = field(repr=False)

    def bucket(self, name: str, *, versioned: bool = True) -> str:
        self.client.create_bucket(Bucket=name)
        if versioned:
            self.client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def get(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def versions(self, bucket: str, prefix: str = "") -> Counter[str]:
        """How many times each key was written (deletes not counted)."""
        pages = self.client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        return Counter(item["Key"] for page in pages for item in page.get("Versions", ()))


def aws_env(endpoint: str, **extra: str) -> dict[str, str]:
    """The AWS environment a run gets: the endpoint and keys, no config file of the machine's."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto server for the session (each test makes its own buckets)."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    try:
        yield S3Server(endpoint, aws_env(endpoint), client)
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with the AWS environment set for in-process runs."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server

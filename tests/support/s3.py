"""moto's S3 server on 127.0.0.1, in a thread of the test process, for every S3 test.

moto keeps its state in process-wide backends, so stopping the HTTP server and starting a new
one on the same port (``restart``) brings back every bucket and object: that is an S3 outage
as a client sees it. ``deny_all_but`` turns on moto's IAM enforcement for the requests after
it, with credentials of an IAM user whose policy allows only the given actions.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

from tests.support.server import free_port

REGION = "us-east-1"
# Dummy credentials for moto (boto3's default chain reads them from the environment).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MotoS3:
    """A moto S3 server on 127.0.0.1 that can be stopped and restarted on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **creds: str) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=creds.get("key", AWS_ENV["AWS_ACCESS_KEY_ID"]),
            aws_secret_access_key=creds.get("secret", AWS_ENV["AWS_SECRET_ACCESS_KEY"]),
        )

    def new_bucket(self) -> str:
        name = f"ts-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out: list[str] = []
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        for page in pages:
            out.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(out)

    def user_allowed(self, bucket: str, actions: list[str]) -> dict[str, str]:
        """Create an IAM user allowed only ``actions`` on ``bucket``; return its keys."""
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        user = f"u{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }

    def enforce_auth(self, on: bool) -> None:
        """Turn moto's IAM enforcement on (from the next request) or off."""
        httpx.post(self.endpoint + "/moto-api/reset-auth", content=b"0" if on else b"inf")


def aws_env() -> dict[str, str]:
    """Environment for a subprocess talking to moto (no real AWS, no instance metadata)."""
    return dict(AWS_ENV)


def set_test_aws_env() -> dict[str, str | None]:
    """Set dummy AWS credentials in this process; return the previous values."""
    old = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v

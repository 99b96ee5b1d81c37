"""A real S3 implementation on loopback: moto's server mode, in a subprocess of the test.

``moto_server()`` starts ``python -m moto.server`` on 127.0.0.1 at a free port, waits until
it answers, yields its base URL and stops it (terminate, then kill). In ``verify=True``
mode moto checks every S3 request's SigV4 signature against an IAM user it knows, the way
AWS does; ``iam_user()`` creates that user and a bucket during the first unchecked calls.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")

# moto's own bookkeeping calls made before signatures are checked (see iam_user()).
SETUP_CALLS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server(*, verify: bool = False) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if verify:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_CALLS)
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/moto-api/", trust_env=False).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError("moto server did not start: "
                                       + log.read().decode(errors="replace")[-2000:])
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def create_bucket(base: str, bucket: str) -> None:
    """A bucket on a non-verifying moto server (an unsigned PUT is enough there)."""
    response = httpx.put(f"{base}/{bucket}", trust_env=False)
    assert response.status_code == 200, response.text


@dataclass(frozen=True)
class IamUser:
    access_key_id: str
    secret_access_key: str


def iam_user(base: str, bucket: str) -> IamUser:
    """On a ``verify=True`` server: a user allowed s3:* and a bucket, in exactly
    ``SETUP_CALLS`` unchecked calls; every later S3 call must be signed by this user."""
    from botocore.session import Session

    session = Session()
    kwargs = {"region_name": "us-east-1", "endpoint_url": base,
              "aws_access_key_id": "AKIASETUPSETUPSETUP0", "aws_secret_access_key": "setup"}
    iam = session.create_client("iam", **kwargs)
    iam.create_user(UserName="kling")
    key = iam.create_access_key(UserName="kling")["AccessKey"]
    iam.put_user_policy(UserName="kling", PolicyName="s3", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
        '"Resource": "*"}]}'))
    session.create_client("s3", **kwargs).create_bucket(Bucket=bucket)
    return IamUser(key["AccessKeyId"], key["SecretAccessKey"])

"""SigV4 against botocore (the reference) and against AWS's published examples.

Every case fixes the credentials and the clock, then compares byte for byte: presigned URLs
as botocore's S3 client writes them (so the endpoint and addressing rules are compared too)
and the headers botocore's S3 signer adds to the same request.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from unittest import mock

import pytest

from kling_elements.hosting import S3Host
from kling_elements.sigv4 import (
    UNSIGNED_PAYLOAD,
    Credentials,
    presign_url,
    quote_path,
    redact,
    sign_headers,
    url_expiry,
)

botocore = pytest.importorskip("botocore")
from botocore import auth as boto_auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials as BotoCredentials  # noqa: E402
from botocore.session import Session  # noqa: E402

NOW = 1_767_236_745.0  # 2026-01-01T03:05:45Z
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE/token+with=specials"

KEYS = [
    "clip.mp4",
    "kling/0123456789abcdef/my clip (take 2).mp4",
    "plates/Ünïcödé — 雪.mov",
    "odd/a+b=c&d?e#f%g~h!*'();:@$,[]{}^|`<>\"\\.mp4",
    "deep//double/./dot/../clip.mp4",
]


def _frozen():
    fixed = datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc).replace(tzinfo=None)
    return mock.patch.object(boto_auth, "get_current_datetime", return_value=fixed)


@functools.cache
def _boto_client(region: str, endpoint: str | None, addressing: str, token: str | None):
    """One botocore S3 client per case, shared by its keys (making one is the slow part)."""
    return Session().create_client(
        "s3", region_name=region, endpoint_url=endpoint, aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET, aws_session_token=token,
        config=Config(signature_version="s3v4", s3={"addressing_style": addressing}),
    )


def _boto_presigned(*, key: str, bucket: str, region: str, endpoint: str | None,
                    addressing: str, token: str | None, expires: int) -> str:
    client = _boto_client(region, endpoint, addressing, token)
    with _frozen():
        return client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)


PRESIGN_CASES = [
    # (endpoint, region, bucket, addressing, session token, expires)
    (None, "us-east-1", "kling-clips", "virtual", None, 3600),
    (None, "eu-central-1", "kling-clips", "virtual", TOKEN, 900),
    (None, "ap-southeast-1", "kling-clips", "path", None, 604800),
    (None, "cn-north-1", "kling-clips", "virtual", None, 3600),
    ("http://127.0.0.1:9000", "us-east-1", "minio-bucket", "path", None, 3600),
    ("https://acct123.r2.cloudflarestorage.com", "auto", "r2-bucket", "path", TOKEN, 7200),
    ("https://minio.example.com:9443", "eu-west-3", "media", "virtual", None, 1800),
    ("https://s3.us-west-004.backblazeb2.com", "us-west-004", "b2-bucket", "virtual", None, 3600),
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(("endpoint", "region", "bucket", "addressing", "token", "expires"),
                         PRESIGN_CASES)
def test_presigned_urls_equal_botocores(key, endpoint, region, bucket, addressing, token,
                                        expires):
    host = S3Host(bucket=bucket, region=region, endpoint=endpoint or "",
                  addressing=addressing, expires_s=expires, clock=lambda: NOW,
                  credentials=Credentials(KEY_ID, SECRET, token or ""))
    expected = _boto_presigned(key=key, bucket=bucket, region=region, endpoint=endpoint,
                               addressing=addressing, token=token, expires=expires)
    assert host.presign(key) == expected


def _boto_signed(method: str, url: str, headers: dict[str, str], body: bytes, *,
                 region: str, token: str | None, sign_payload: bool) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    request.context["client_config"] = Config(s3={"payload_signing_enabled": sign_payload})
    signer = boto_auth.S3SigV4Auth(BotoCredentials(KEY_ID, SECRET, token), "s3", region)
    with _frozen():
        signer.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


HEADER_CASES = [
    # (method, url, region, token, body, sign the payload)
    ("PUT", "http://127.0.0.1:9000/bucket/", "us-east-1", None, b"clip bytes" * 1000, True),
    ("PUT", "https://bucket.s3.eu-west-1.amazonaws.com/", "eu-west-1", TOKEN, b"x" * 70, False),
    ("PUT", "https://acct.r2.cloudflarestorage.com/b/", "auto", None, b"\x00\xff" * 9, True),
    ("DELETE", "https://bucket.s3.us-east-2.amazonaws.com/", "us-east-2", TOKEN, b"", True),
    ("GET", "http://localhost:4566/bucket/", "sa-east-1", None, b"", True),
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(("method", "base", "region", "token", "body", "sign_payload"),
                         HEADER_CASES)
def test_signed_headers_equal_botocores(key, method, base, region, token, body, sign_payload):
    url = base + quote_path(key)
    headers = {"Content-Type": "video/mp4", "Content-Length": str(len(body))} if body else {}
    payload = hashlib.sha256(body).hexdigest() if sign_payload else UNSIGNED_PAYLOAD
    ours = sign_headers(method, url, Credentials(KEY_ID, SECRET, token or ""), region,
                        headers=headers, payload_sha256=payload, now=NOW)
    theirs = _boto_signed(method, url, headers, body, region=region, token=token,
                          sign_payload=sign_payload)
    ours = {k.lower(): v for k, v in ours.items()}
    assert ours.pop("host") == url.split("/")[2]  # botocore leaves Host to the HTTP library
    assert ours == theirs


def test_a_query_in_the_url_is_signed_as_botocore_signs_it():
    url = "https://bucket.s3.amazonaws.com/" + quote_path("a b.mp4") + "?tagging&versionId=v%2B1"
    ours = sign_headers("GET", url, Credentials(KEY_ID, SECRET), "us-east-1",
                        payload_sha256=hashlib.sha256(b"").hexdigest(), now=NOW)
    theirs = _boto_signed("GET", url, {}, b"", region="us-east-1", token=None,
                          sign_payload=True)
    assert ours["Authorization"] == theirs["authorization"]


# AWS's own worked examples (Amazon S3 API reference, "Signature Calculations for the
# Authorization Header" and "Authenticating Requests: Using Query Parameters").
AWS_KEY = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
AWS_NOW = 1369353600.0  # 20130524T000000Z


def test_aws_documented_presigned_url():
    url = presign_url("GET", "https://examplebucket.s3.amazonaws.com/test.txt", AWS_KEY,
                      "us-east-1", expires_s=86400, now=AWS_NOW)
    assert url.endswith("X-Amz-Signature="
                        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")


def test_aws_documented_get_object_signature():
    headers = sign_headers(
        "GET", "https://examplebucket.s3.amazonaws.com/test.txt", AWS_KEY, "us-east-1",
        headers={"Range": "bytes=0-9"}, payload_sha256=hashlib.sha256(b"").hexdigest(),
        now=AWS_NOW,
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


# ------------------------------------------------------------- helpers around signing


def test_url_expiry_reads_the_presigned_urls_own_clock():
    url = presign_url("GET", "http://127.0.0.1:9000/b/k.mp4", AWS_KEY, "us-east-1",
                      expires_s=900, now=NOW)
    assert url_expiry(url) == NOW + 900
    assert url_expiry("https://example.com/clip.mp4") is None
    assert url_expiry("https://e.com/c.mp4?X-Amz-Date=garbage&X-Amz-Expires=60") is None


@pytest.mark.parametrize("expires", [0, -1, 604801])
def test_presign_refuses_a_lifetime_sigv4_does_not_allow(expires):
    with pytest.raises(ValueError, match=r"outside 1\.\.604800"):
        presign_url("GET", "https://e.com/b/k", AWS_KEY, "us-east-1", expires_s=expires)


def test_secrets_stay_out_of_reprs_and_redacted_text():
    creds = Credentials(KEY_ID, SECRET, TOKEN)
    assert SECRET not in repr(creds) and TOKEN not in repr(creds)
    url = presign_url("GET", "https://b.s3.amazonaws.com/k", creds, "us-east-1", now=NOW)
    signature = url.rsplit("=", 1)[1]
    shown = redact(f"failed: GET {url} (Authorization: AWS4-HMAC-SHA256 Credential="
                   f"{KEY_ID}/x, SignedHeaders=host, Signature={signature})")
    assert signature not in shown and "IQoJb3JpZ2lu" not in shown and KEY_ID not in shown
    assert "X-Amz-Signature=***" in shown and "https://b.s3.amazonaws.com/k?" in shown

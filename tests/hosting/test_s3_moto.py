"""The S3 provider against a real S3 implementation (moto's server, on loopback).

One server publishes and serves presigned URLs; another checks every request's signature
against an IAM user, as AWS does, so a wrong secret really is refused by the store.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kling_elements.hosting import (
    HostingError,
    HostingSettings,
    S3Host,
    content_sha256,
    make_host,
)
from kling_elements.sigv4 import EMPTY_SHA256, Credentials, sign_headers, url_expiry

from ..support.moto import IamUser, iam_user, moto_server

KEYS = Credentials("AKIAMOTOPLAINKEY0000", "plain-secret/never+shown")


def _host(base: str, bucket: str, creds: Credentials = KEYS, **extra) -> S3Host:
    return S3Host(bucket=bucket, endpoint=base, credentials=creds, **extra)


@pytest.fixture
def odd_name(clip, tmp_path) -> Path:
    """The sample clip under a name with spaces, unicode and URL-special characters."""
    path = tmp_path / "take #2 (final) — ü+%&=.mp4"
    shutil.copyfile(clip.path, path)
    return path


def test_published_clip_downloads_byte_identical_from_the_presigned_url(moto, bucket, odd_name):
    progress: list[tuple[int, int | None]] = []
    host = _host(moto, bucket, prefix="kling/renders")
    url = host.publish(odd_name, on_progress=lambda done, total: progress.append((done, total)))

    size = odd_name.stat().st_size
    assert url.startswith(f"{moto}/{bucket}/kling/renders/") and "X-Amz-Signature=" in url
    assert abs(url_expiry(url) - (time.time() + 3600)) < 120
    response = httpx.get(url, trust_env=False)
    assert response.status_code == 200 and response.content == odd_name.read_bytes()
    assert response.headers["content-type"] == "video/mp4"
    assert progress[0] == (0, size) and progress[-1] == (size, size)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_the_key_is_the_content_hash_then_the_readable_name(moto, bucket, odd_name):
    _host(moto, bucket, prefix="/kling").publish(odd_name)
    listing = httpx.get(f"{moto}/{bucket}", trust_env=False).text
    key = f"kling/{content_sha256(odd_name)[:16]}/{odd_name.name}"
    assert f"<Key>{key.replace('&', '&amp;')}</Key>" in listing


def test_same_content_lands_on_the_same_key_and_cleanup_deletes_it(moto, bucket, clip, tmp_path):
    copy = tmp_path / "clip.mp4"
    shutil.copyfile(clip.path, copy)
    host = _host(moto, bucket)
    first, second = host.publish(clip.path), host.publish(copy)
    assert first.split("?")[0] == second.split("?")[0]
    host.cleanup(first)
    assert httpx.get(first, trust_env=False).status_code == 404
    host.cleanup(first)  # already gone: no error


def test_a_missing_bucket_is_named_with_the_fix(moto, clip):
    with pytest.raises(HostingError) as caught:
        _host(moto, "no-such-bucket").publish(clip.path)
    text = str(caught.value)
    assert caught.value.store_code == "NoSuchBucket" and caught.value.http_status == 404
    assert "'no-such-bucket'" in text and moto in text and "create the bucket" in text


def test_make_host_from_settings_publishes_to_moto(moto, bucket, clip):
    settings = HostingSettings.from_env("s3", {
        "AWS_ACCESS_KEY_ID": KEYS.access_key_id, "AWS_SECRET_ACCESS_KEY": KEYS.secret_access_key,
        "AWS_ENDPOINT_URL_S3": moto, "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_REGION": "eu-west-1",
    }, s3_bucket=bucket, s3_expires_s=900)
    url = make_host(settings).publish(clip.path)
    assert url.startswith(moto) and "%2Feu-west-1%2Fs3%2F" in url and "X-Amz-Expires=900" in url
    assert httpx.get(url, trust_env=False).content == Path(clip.path).read_bytes()


# ------------------------------------------------- a store that checks every signature


@pytest.fixture(scope="module")
def verifying() -> Iterator[tuple[str, IamUser]]:
    with moto_server(verify=True) as base:
        yield base, iam_user(base, "checked")


def _signed_get(base: str, url: str, user: IamUser) -> httpx.Response:
    creds = Credentials(user.access_key_id, user.secret_access_key)
    headers = sign_headers("GET", url, creds, "us-east-1", payload_sha256=EMPTY_SHA256)
    return httpx.get(url, headers=headers, trust_env=False)


def test_a_store_that_checks_signatures_accepts_our_upload(verifying, odd_name):
    base, user = verifying
    host = _host(base, "checked", Credentials(user.access_key_id, user.secret_access_key),
                 prefix="p/")
    url = host.publish(odd_name)
    response = _signed_get(base, url.split("?")[0], user)
    assert response.status_code == 200 and response.content == odd_name.read_bytes()


@pytest.mark.parametrize(("key_id", "code", "hint"), [
    (None, "SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"),
    ("AKIANOBODYKNOWSTHIS0", "InvalidAccessKeyId", "AWS_ACCESS_KEY_ID"),
])
def test_wrong_keys_are_refused_by_the_store_with_a_clear_message(verifying, clip, key_id, code,
                                                                  hint):
    base, user = verifying
    wrong = Credentials(key_id or user.access_key_id, "wrong-secret-value-123")
    with pytest.raises(HostingError) as caught:
        _host(base, "checked", wrong).publish(clip.path)
    text = str(caught.value)
    assert caught.value.store_code == code and caught.value.http_status == 403
    assert hint in text and base in text
    assert "wrong-secret-value-123" not in text and "Signature=" not in text
    assert caught.value.__cause__ is None and caught.value.__context__ is None

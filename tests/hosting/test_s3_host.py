"""The S3 provider's request shape, retries and error messages, without a network.

``httpx.MockTransport`` plays the store; each error body is the XML S3 sends (including
the parts that quote the string to sign and the access key id, which must not be echoed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from kling_elements.errors import ConnectionFailed, KlingError, ValidationError
from kling_elements.hosting import HostingError, S3Host
from kling_elements.hosting import s3 as s3_module
from kling_elements.hosting.s3 import resolve_addressing
from kling_elements.sigv4 import Credentials

SECRET = "s3cr3t/SECRET+value"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN"
CREDS = Credentials("AKIAEXAMPLEKEYID0000", SECRET, TOKEN)
ENDPOINT = "https://store.example.com"


@pytest.fixture(autouse=True)
def _any_file_is_a_clip(monkeypatch):
    monkeypatch.setattr(s3_module, "check_clip", lambda path: None)


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "shot 10.mov"
    path.write_bytes(bytes(range(256)) * 12_000)  # ~3 MB: several 1 MiB chunks
    return path


class Store:
    """A scripted store: answers in order (the last one repeats), records every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers) or [httpx.Response(200)]
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _host(store: Store, sleeps: list[float] | None = None, **extra) -> S3Host:
    options = {"bucket": "renders", "credentials": CREDS, "endpoint": ENDPOINT,
               "region": "eu-west-1", **extra}
    return S3Host(transport=httpx.MockTransport(store),
                  sleep=(sleeps.append if sleeps is not None else lambda s: None), **options)


def _error(status: int, code: str, message: str = "", **more: str) -> httpx.Response:
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in more.items())
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message>{extra}<RequestId>R1</RequestId></Error>")
    return httpx.Response(status, content=body.encode(),
                          headers={"content-type": "application/xml"})


def test_the_upload_is_one_signed_streamed_put_of_the_whole_file(clip):
    store = Store()
    progress: list[tuple[int, int | None]] = []
    url = _host(store, prefix="kling").publish(clip, on_progress=lambda *p: progress.append(p))

    (put,) = store.requests
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()
    assert put.method == "PUT"
    assert str(put.url) == f"{ENDPOINT}/renders/kling/{digest[:16]}/shot%2010.mov"
    assert put.headers["content-length"] == str(clip.stat().st_size)
    assert "transfer-encoding" not in put.headers
    assert put.headers["x-amz-content-sha256"] == digest
    assert put.headers["content-type"] == "video/quicktime"
    assert put.headers["x-amz-security-token"] == TOKEN
    assert "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date;" \
           "x-amz-security-token," in put.headers["authorization"]
    assert store.bodies[0] == clip.read_bytes()
    assert len(progress) >= 4 and progress[-1] == (clip.stat().st_size,) * 2
    assert url.startswith(str(put.url) + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&")


def _assert_clean(error: BaseException) -> str:
    text = str(error)
    for secret in (SECRET, TOKEN, "abc123", "StringToSign", "AKIAEXAMPLEKEYID0000"):
        assert secret not in text, text
    assert error.__cause__ is None and error.__context__ is None
    return text


@pytest.mark.parametrize(("answer", "code", "needles"), [
    (_error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName="renders"),
     "NoSuchBucket", ["'renders'", ENDPOINT, "create the bucket", "s3_bucket"]),
    (_error(403, "AccessDenied", "Access Denied"),
     "AccessDenied", ["'renders'", "s3:PutObject", "renders/"]),
    (_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match",
            AWSAccessKeyId="AKIAEXAMPLEKEYID0000", StringToSign="AWS4-HMAC-SHA256 20260101",
            CanonicalRequest="PUT /renders/x"),
     "SignatureDoesNotMatch", ["AWS_SECRET_ACCESS_KEY", "'eu-west-1'", ENDPOINT]),
    (_error(403, "RequestTimeTooSkewed", "The difference between the request time and the "
            "current time is too large.", MaxAllowedSkewMilliseconds="900000"),
     "RequestTimeTooSkewed", ["clock", "15 minutes", "network time"]),
    (_error(400, "AuthorizationHeaderMalformed", "the region 'eu-west-1' is wrong; expecting "
            "'us-east-2'", Region="us-east-2"),
     "AuthorizationHeaderMalformed", ["'us-east-2'", "AWS_REGION"]),
    (_error(400, "ExpiredToken", "The provided token has expired."),
     "ExpiredToken", ["AWS_SESSION_TOKEN", "fresh"]),
    (_error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does "
            "not match what was computed."),
     "XAmzContentSHA256Mismatch", ["changed while it was uploaded"]),
    (httpx.Response(404, content=b"<html>not found</html>"),
     None, ["without an S3 error", "s3_addressing", "HTTP 404"]),
])
def test_store_refusals_become_messages_that_name_the_store_and_the_fix(clip, answer, code,
                                                                        needles):
    store = Store(answer)
    with pytest.raises(HostingError) as caught:
        _host(store).publish(clip)
    text = _assert_clean(caught.value)
    assert caught.value.store_code == code and caught.value.provider == "s3"
    assert isinstance(caught.value, KlingError) and len(store.requests) == 1  # no retry
    for needle in needles:
        assert needle in text, (needle, text)


def test_busy_answers_are_retried_with_backoff_then_succeed(clip):
    store = Store(_error(503, "SlowDown", "Reduce your request rate."),
                  httpx.Response(500), httpx.Response(200))
    sleeps: list[float] = []
    _host(store, sleeps).publish(clip)
    # The shared policy (retry.RetryPolicy): 0.5 s then 1 s, each less up to a quarter.
    assert len(store.requests) == 3 and len(sleeps) == 2
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0
    assert store.bodies[2] == clip.read_bytes()  # the body is sent whole again


def test_a_store_that_stays_busy_fails_after_three_tries(clip):
    store = Store(_error(503, "SlowDown", "Reduce your request rate."))
    with pytest.raises(HostingError, match="try again in a few minutes"):
        _host(store).publish(clip)
    assert len(store.requests) == 3


def test_a_connection_error_never_shows_the_signed_request(clip):
    leak = httpx.ConnectError(f"refused while sending Authorization: AWS4-HMAC-SHA256 "
                              f"Credential=AKIAEXAMPLEKEYID0000/x, Signature=abc123 {SECRET}")
    store = Store(leak)
    with pytest.raises(ConnectionFailed) as caught:
        _host(store).publish(clip)
    text = _assert_clean(caught.value)
    assert "ConnectError" in text and ENDPOINT in text and len(store.requests) == 3


def test_a_refused_clip_sends_nothing(clip, monkeypatch):
    def refuse(path):
        raise ValidationError("duration 5.5 s is between 5 and 7 s: trim it")

    monkeypatch.setattr(s3_module, "check_clip", refuse)
    store = Store()
    with pytest.raises(ValidationError, match="trim it"):
        _host(store).publish(clip)
    monkeypatch.setattr(s3_module, "check_clip", lambda path: None)
    monkeypatch.setattr(s3_module, "MAX_PUT_BYTES", 1000)
    with pytest.raises(ValidationError, match="5 GiB"):
        _host(store).publish(clip)
    assert store.requests == []


def test_cleanup_deletes_by_url_or_key_and_ignores_a_missing_object(clip):
    store = Store(httpx.Response(200), httpx.Response(204),
                  _error(404, "NoSuchKey", "The specified key does not exist."))
    host = _host(store)
    url = host.publish(clip)
    host.cleanup(url)
    host.cleanup("kling/abc/shot 10.mov")
    assert [r.method for r in store.requests] == ["PUT", "DELETE", "DELETE"]
    assert store.requests[1].url.path == store.requests[0].url.path
    assert store.requests[2].url.raw_path == b"/renders/kling/abc/shot%2010.mov"
    with pytest.raises(ValidationError, match="not in bucket 'renders'"):
        host.cleanup(f"{ENDPOINT}/other/key.mp4")


def test_repr_and_identity_hold_no_secret():
    host = _host(Store())
    for text in (repr(host), host.identity):
        assert SECRET not in text and TOKEN not in text
    assert "AKIAEXAMPLEKEYID0000" not in host.identity


def test_virtual_host_addressing_puts_the_bucket_in_the_host(clip):
    store = Store()
    _host(store, endpoint="", region="eu-west-1", addressing="auto").publish(clip)
    assert store.requests[0].url.host == "renders.s3.eu-west-1.amazonaws.com"
    assert store.requests[0].url.path.startswith("/")
    assert store.requests[0].headers["host"] == "renders.s3.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(("addressing", "endpoint", "bucket", "expected"), [
    ("auto", "https://s3.amazonaws.com", "clips", "virtual"),
    ("auto", "https://s3.eu-west-1.amazonaws.com", "my.dotted.bucket", "path"),
    ("auto", "https://oss-cn-hangzhou.aliyuncs.com", "clips", "virtual"),
    ("auto", "https://acct.r2.cloudflarestorage.com", "clips", "path"),
    ("auto", "http://127.0.0.1:9000", "clips", "path"),
    ("auto", "http://localhost:9000", "clips", "path"),
    ("auto", "https://s3.us-west-004.backblazeb2.com", "clips", "path"),
    ("virtual", "https://minio.example.com", "clips", "virtual"),
    ("path", "https://s3.amazonaws.com", "clips", "path"),
])
def test_auto_addressing(addressing, endpoint, bucket, expected):
    assert resolve_addressing(addressing, endpoint, bucket) == expected


def test_before_request_refuses_an_upload_before_anything_is_sent(clip):
    class Refused(Exception):
        pass

    def refuse(request):
        raise Refused(request.url.host)

    store, sleeps = Store(), []
    with pytest.raises(Refused, match=r"store\.example"):
        _host(store, sleeps, before_request=refuse).publish(clip)
    assert store.requests == [] and sleeps == []

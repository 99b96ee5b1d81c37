"""HostingSettings (plain data from preferences, flags and the environment) and make_host."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from kling_elements.errors import ValidationError
from kling_elements.hosting import (
    CachingHost,
    CommandHost,
    HostingSettings,
    S3Host,
    SandboxHost,
    UrlHost,
    make_host,
)

SECRET = "wJalrXUtnFEMI/K7MDENG+SECRET"
TOKEN = "FQoGZXIvYXdzSESSIONTOKEN"
AWS = {"AWS_ACCESS_KEY_ID": "AKIAENVKEY000000", "AWS_SECRET_ACCESS_KEY": SECRET,
       "AWS_SESSION_TOKEN": TOKEN, "AWS_REGION": "eu-north-1",
       "AWS_DEFAULT_REGION": "us-west-2", "AWS_ENDPOINT_URL": "https://generic.example.com",
       "AWS_ENDPOINT_URL_S3": "https://s3-only.example.com",
       "KLING_ELEMENTS_S3_BUCKET": "env-bucket"}


def test_from_env_reads_the_aws_names_the_way_the_aws_tools_do():
    s = HostingSettings.from_env("s3", AWS)
    assert (s.s3_access_key_id, s.s3_secret_access_key, s.s3_session_token) == (
        "AKIAENVKEY000000", SECRET, TOKEN)
    assert s.s3_region == "eu-north-1" and s.s3_endpoint == "https://s3-only.example.com"
    assert s.s3_bucket == "env-bucket"
    fallback = HostingSettings.from_env("s3", {"AWS_DEFAULT_REGION": "us-west-2",
                                               "AWS_ENDPOINT_URL": "https://generic.example.com"})
    assert fallback.s3_region == "us-west-2"
    assert fallback.s3_endpoint == "https://generic.example.com"


def test_explicit_overrides_win_but_empty_ones_do_not_erase_the_environment():
    s = HostingSettings.from_env("s3", AWS, s3_bucket="flag-bucket", s3_region="",
                                 s3_endpoint=None, s3_expires_s=1800)
    assert s.s3_bucket == "flag-bucket" and s.s3_region == "eu-north-1"
    assert s.s3_endpoint == "https://s3-only.example.com" and s.s3_expires_s == 1800
    with pytest.raises(TypeError, match="s3_bucket_name"):
        HostingSettings.from_env("s3", {}, s3_bucket_name="x")


def test_the_kind_comes_from_the_argument_then_the_environment_then_sandbox():
    env = {"KLING_ELEMENTS_HOST_WITH": "command", "KLING_ELEMENTS_HOST_COMMAND": "up {path}",
           "KLING_ELEMENTS_HOST_COMMAND_TIMEOUT": "30", "KLING_ELEMENTS_S3_EXPIRES": "7200"}
    assert HostingSettings.from_env(None, env).kind == "command"
    assert HostingSettings.from_env("url", env).kind == "url"
    assert HostingSettings.from_env(None, {}).kind == "sandbox"
    parsed = HostingSettings.from_env(None, env)
    assert parsed.command_timeout_s == 30.0 and parsed.s3_expires_s == 7200
    assert parsed.problems() == []


def test_repr_hides_the_secret_and_the_token_and_says_whether_they_are_set():
    s = HostingSettings.from_env("s3", AWS, url="https://x.example.com/c.mp4?X-Amz-Signature=ab12")
    text = repr(s)
    assert SECRET not in text and TOKEN not in text and "ab12" not in text
    assert "s3_secret_access_key='<hidden>'" in text and "s3_bucket='env-bucket'" in text
    assert "s3_session_token=''" in repr(HostingSettings("s3"))
    assert str(s) == text


def test_settings_are_frozen_plain_data():
    s = HostingSettings("s3", s3_bucket="b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.s3_bucket = "c"  # type: ignore[misc]
    assert dataclasses.replace(s, s3_bucket="c").s3_bucket == "c"


@pytest.mark.parametrize(("settings", "needles"), [
    (HostingSettings("ftp"), ["'ftp'", "sandbox, s3, command, url", "--host-with"]),
    (HostingSettings("s3"), ["bucket is not set", "KLING_ELEMENTS_S3_BUCKET",
                             "access key id is not set", "$AWS_ACCESS_KEY_ID",
                             "secret access key is not set", "$AWS_SECRET_ACCESS_KEY"]),
    (HostingSettings("s3", s3_bucket="b/folder", s3_access_key_id="a",
                     s3_secret_access_key="s"), ["'b/folder'", "s3_prefix"]),
    (HostingSettings("s3", s3_bucket="b", s3_access_key_id="a", s3_secret_access_key="s",
                     s3_endpoint="minio:9000"), ["'minio:9000'", "http(s) URL"]),
    (HostingSettings("s3", s3_bucket="b", s3_access_key_id="a", s3_secret_access_key="s",
                     s3_prefix="renders/../kling/"), ["'renders/../kling/'", "'..'"]),
    (HostingSettings("s3", s3_bucket="b", s3_access_key_id="a", s3_secret_access_key="s",
                     s3_endpoint="https://h.example.com/b"), ["has a path", "s3_bucket"]),
    (HostingSettings("s3", s3_bucket="b", s3_access_key_id="a", s3_secret_access_key="s",
                     s3_addressing="dns"), ["'dns'", "auto, path, virtual"]),
    (HostingSettings("s3", s3_bucket="b", s3_access_key_id="a", s3_secret_access_key="s",
                     s3_expires_s=60), ["60", "900 to 604800", "s3_expires_s"]),
    (HostingSettings("s3", s3_bucket="b", s3_access_key_id="a", s3_secret_access_key="s",
                     s3_expires_s=8 * 86400), ["691200", "7 days"]),
    (HostingSettings("command"), ["command is empty", "{path}"]),
    (HostingSettings("command", command="rclone copy {file} 'r2:x"),
     ["cannot be split", "quotation"]),
    (HostingSettings("command", command="up {file} {name}", command_timeout_s=0),
     ["{file}", "no {path}", "time limit 0"]),
    (HostingSettings("url"), ["URL is not set", "KLING_ELEMENTS_HOST_URL"]),
    (HostingSettings("url", url="ftp://h/c.mp4"), ["'ftp://h/c.mp4'", "http(s)"]),
])
def test_problems_name_the_setting_and_the_fix(settings, needles):
    problems = settings.problems()
    assert problems
    text = "; ".join(problems)
    for needle in needles:
        assert needle in text, (needle, text)
    with pytest.raises(ValidationError) as caught:
        settings.validate()
    assert str(caught.value) == text


def test_valid_settings_have_no_problems():
    assert HostingSettings("sandbox").problems() == []
    assert HostingSettings.from_env("s3", AWS).problems() == []
    assert HostingSettings("url", url="https://cdn.example.com/c.mp4").problems() == []


# ------------------------------------------------------------------------ make_host


def test_make_host_builds_the_provider_of_each_kind(tmp_path):
    with httpx.Client(base_url="http://127.0.0.1:1") as http:
        assert isinstance(make_host(HostingSettings("sandbox"), http=http), SandboxHost)
        assert isinstance(make_host(HostingSettings.from_env("s3", AWS)), S3Host)
        assert isinstance(make_host(HostingSettings("command", command="up {path}")),
                          CommandHost)
        url = make_host(HostingSettings("url", url="https://cdn.example.com/c.mp4"),
                        cache_dir=tmp_path)
        assert isinstance(url, UrlHost)  # nothing is uploaded, so nothing is cached
        cached = make_host(HostingSettings("sandbox"), http=http, cache_dir=tmp_path)
        assert isinstance(cached, CachingHost) and isinstance(cached.inner, SandboxHost)
    assert list(tmp_path.iterdir()) == []  # building a host does no I/O


def test_make_host_validates_first():
    with pytest.raises(ValidationError, match="bucket is not set"):
        make_host(HostingSettings("s3"))
    with pytest.raises(ValidationError, match=r"http=client\.http"):
        make_host(HostingSettings("sandbox"))


def test_the_cache_is_keyed_by_where_it_publishes_never_by_a_secret(tmp_path):
    host = make_host(HostingSettings.from_env("s3", AWS, s3_prefix="kling"), cache_dir=tmp_path)
    assert isinstance(host, CachingHost)
    identity = host.identity
    assert "https://s3-only.example.com" in identity and "env-bucket/kling/" in identity
    for secret in (SECRET, TOKEN, "AKIAENVKEY000000"):
        assert secret not in identity
    other_key = make_host(HostingSettings.from_env("s3", {**AWS, "AWS_ACCESS_KEY_ID": "AKIA2"}),
                          cache_dir=tmp_path)
    assert other_key.identity != make_host(HostingSettings.from_env("s3", AWS),
                                           cache_dir=tmp_path).identity
    command = make_host(HostingSettings("command", command="up --token=SECRET123 {path}"),
                        cache_dir=tmp_path)
    assert "SECRET123" not in command.identity and "SECRET123" not in repr(command.inner)
    json.dumps(identity)

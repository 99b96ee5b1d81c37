"""``validate.task``: every problem of a create request at once, each naming its field,
and the consumers that word its fixes for their users (client, workflow, batch manifest,
add-on panel) all following it."""

from __future__ import annotations

import httpx
import pytest

import kling_elements as ke
from kling_elements import validate
from kling_elements.batch import manifest as batch_manifest
from kling_elements.workflow import EditJob, run_edit

PROMPT = "Delete the cup from <<<video_1>>>"


def fields(problems: list[validate.TaskProblem]) -> list[str]:
    return [p.field for p in problems]


def test_a_valid_request_has_no_problem():
    assert validate.task(edit_mode="removal", prompt=PROMPT, duration="5",
                         marked_frames=1) == []


def test_every_problem_is_returned_not_only_the_first():
    problems = validate.task(
        edit_mode="swap", prompt="x" * 2501, images=["data:image/png;base64,AAAA"],
        negative_prompt="y" * 2501, mode="ultra", duration="7", marked_frames=0,
        callback_url="ftp://hooks.example.com", external_task_id="a/b")
    assert fields(problems) == ["prompt", "negative_prompt", "mode", "duration", "selection",
                                "images", "callback_url", "external_task_id"]
    text = " | ".join(map(str, problems))
    assert "2500" in text and "'ultra'" in text and "ftp://hooks.example.com" in text
    assert "swap needs a marked selection" in text and "'a/b'" in text


def test_an_unknown_edit_mode_skips_the_rules_that_depend_on_it():
    assert fields(validate.task(edit_mode="erase", prompt=PROMPT, duration="5",
                                marked_frames=0)) == ["edit_mode"]


def test_the_session_length_is_a_problem_only_when_nothing_will_tell_it():
    assert fields(validate.task(edit_mode="removal", prompt=PROMPT)) == ["session_length"]
    assert validate.task(edit_mode="removal", prompt=PROMPT, duration_later=True) == []
    assert validate.task(edit_mode="removal", prompt=PROMPT, session_duration_s=8.0) == []
    assert fields(validate.task(edit_mode="removal", prompt=PROMPT, duration="5",
                                session_duration_s=8.0)) == ["duration"]


def test_an_unknown_selection_is_not_held_against_the_request():
    assert validate.task(edit_mode="removal", prompt=PROMPT, duration="5") == []


def test_the_client_refuses_what_the_table_refuses_and_sends_nothing():
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request))
    with ke.Client(api_key="k", base_url="https://kling.example.com",
                   transport=transport) as client, \
            pytest.raises(ke.ValidationError, match="callback_url 'ftp://x'"):
        client.create_task(session_id="s", edit_mode="removal", prompt=PROMPT, duration="5",
                           callback_url="ftp://x")
    assert sent == []


def test_a_workflow_job_is_checked_by_the_table_before_anything_is_sent(tmp_path):
    job = EditJob(output=str(tmp_path / "out.mp4"), edit_mode="removal", prompt=PROMPT,
                  video_url="https://cdn.example.com/v.mp4", mode="ultra")
    with ke.Client(api_key="k", base_url="http://127.0.0.1:9") as client, \
            pytest.raises(ke.ValidationError, match="removal needs a marked selection"):
        run_edit(client, job)
    job = EditJob(output=str(tmp_path / "out.mp4"), edit_mode="removal", prompt=PROMPT,
                  video_url="https://cdn.example.com/v.mp4", mode="ultra",
                  selections=((0, ((0.5, 0.5),)),))
    with ke.Client(api_key="k", base_url="http://127.0.0.1:9") as client, \
            pytest.raises(ke.ValidationError, match="mode 'ultra'"):
        run_edit(client, job)


def test_the_batch_manifest_lists_the_tables_problems_for_a_line(tmp_path):
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(
        '{"name": "a", "video": "https://cdn.example.com/v.mp4", "edit_mode": "swap", '
        '"prompt": "swap it in <<<video_1>>>", "images": ["https://cdn.example.com/i.png"], '
        '"mode": "ultra", "duration": "7"}\n')
    problems = " | ".join(p.message for p in batch_manifest.load(manifest).problems)
    assert "swap needs a selection" in problems  # the manifest's wording of the rule
    assert "mode 'ultra'" in problems and "duration '7'" in problems

"""The versioned prompt set: loading, rendering, hashing, clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import demo_facts, make_requests

from prompts import PromptError, available_versions, load_prompts
from prompts.loader import facts_lines


def test_v1_loads_with_params_and_schema() -> None:
    p = load_prompts("v1")
    assert "v1" in available_versions()
    assert p.version == "v1"
    schema = p.questions.response_format["schema"]
    assert schema["properties"]["questions"]["minItems"] == 3 == schema["properties"]["questions"]["maxItems"]
    for step in (p.questions, p.answer, p.caption):
        assert step.params.max_tokens > 0 and 0 < step.params.top_p <= 1 and isinstance(step.params.seed, int)
        assert step.system


def test_rendering_uses_tags_facts_and_answers() -> None:
    p = load_prompts("v1")
    (req,) = make_requests(1)
    q = p.render_questions(req)
    assert "farmland, lake" in q and "Lake Demo" in q and "45 %" in q and "JSON" in q
    a = p.render_answer(req, "Is there water?")
    assert a.endswith("Question: Is there water?")
    c = p.render_caption(req, ["q1?", "q2?", "q3?"], ["a1.", "a2.", "a3."])
    assert "Q: q2?\n  A: a2." not in c and "Q: q2?" in c and "A: a3." in c and "Lake Demo" in c


def test_facts_lines_are_plain_and_bounded() -> None:
    lines = facts_lines(demo_facts())
    assert lines[0] == "land use / farmland: 45 % of the area"
    assert "buildings: 42 (3 % of the area)" in lines and "roads: residential 3.4 km" in lines
    assert facts_lines(None) == []


def test_prompt_hash_depends_on_texts_and_image() -> None:
    p = load_prompts("v1")
    img = hashlib.sha256(b"png").hexdigest()
    h = p.prompt_hash(["a", "b"], img)
    assert len(h) == 64 and h == p.prompt_hash(["a", "b"], img)
    assert h != p.prompt_hash(["a", "c"], img)
    assert h != p.prompt_hash(["ab"], img)
    assert h != p.prompt_hash(["a", "b"], hashlib.sha256(b"other").hexdigest())


def test_unknown_version_lists_available() -> None:
    with pytest.raises(PromptError, match=r"unknown prompt version 'v99'.*available: .*v1"):
        load_prompts("v99")


def test_bad_version_files_give_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "vbad"
    bad.mkdir()
    for step in ("questions", "answer", "caption"):
        (bad / f"{step}.yaml").write_text("template: 'hi {{ tags }}'\nparams: {temperature: 0.1}\n")
    with pytest.raises(PromptError, match="needs a response_format"):
        load_prompts("vbad", tmp_path)
    (bad / "answer.yaml").write_text("template: 'x'\nparams: {top_p: 0}\n")
    (bad / "questions.yaml").write_text(
        "template: 'q'\nresponse_format: {name: q, schema: {type: object}}\n")
    with pytest.raises(PromptError, match=r"top_p must be in \(0, 1\]"):
        load_prompts("vbad", tmp_path)
    (bad / "answer.yaml").write_text("template: '{% if x %}'\n")
    with pytest.raises(PromptError, match="template syntax error"):
        load_prompts("vbad", tmp_path)

"""The report against hand-made rating files: distributions, kappa, alpha, filters vs experts, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.errors import InputError
from validation.export import export_validation
from validation.ratings import RatingFileError
from validation.report import compute_report, validation_report

FARM = "Green farmland fields with a small lake and a narrow road."
FOREST = "Dense forest covers the hills beside a winding river."
WATER = "Open water of a wide bay with a sandy shore."
TOWN = "A residential town with houses, streets and a church."


def span(caption: str, words: str) -> dict:
    start = caption.index(words)
    return {"start": start, "end": start + len(words), "text": words}


def rate(completeness: str | None, *spans: dict, comment: str = "") -> dict:
    return {"completeness": completeness, "spans": list(spans), "comment": comment}


@pytest.fixture
def rated(run_dir: Path, tmp_path: Path, ratings_writer) -> Path:  # type: ignore[no-untyped-def]
    folder = export_validation(run_dir, tmp_path / "all", n=100)  # all 22 ok rows
    # loc0001 is flagged (grounding_water) with the forest caption,
    # loc0006 flagged (too_short) with the water one
    ratings_writer(
        folder,
        "alice",
        {
            "loc0000_2024-Q1": rate("Excellent"),
            "loc0001_2024-Q1": rate("Poor", span(FOREST, "winding river")),
            "loc0002_2024-Q1": rate("Good", span(WATER, "wide"), span(WATER, "sandy")),
            "loc0003_2024-Q1": rate(
                "Terrible", *(span(TOWN, w) for w in ("town", "houses", "streets", "church"))
            ),
            "loc0006_2024-Q2": rate("Average"),
        },
    )
    ratings_writer(
        folder,
        "bob",
        {
            "loc0000_2024-Q1": rate("Good"),
            "loc0001_2024-Q1": rate("Poor", span(FOREST, "river")),
            "loc0002_2024-Q1": rate("Good", comment="fine"),
            "loc0006_2024-Q2": rate("Below Average", span(WATER, "bay")),
            "loc0004_2024-Q2": rate("Excellent"),
            "loc0003_2024-Q1": rate(None, span(TOWN, "church")),  # not rated yet: ignored
        },
    )
    return folder


def test_distributions_per_rater_and_overall(rated: Path) -> None:
    data = compute_report(rated)
    alice, bob, overall = data["per_rater"]["alice"], data["per_rater"]["bob"], data["overall"]
    assert data["raters"] == ["alice", "bob"] and data["samples"] == 22
    assert alice["completeness"] == {
        "Excellent": 1,
        "Good": 1,
        "Average": 1,
        "Below Average": 0,
        "Poor": 1,
        "Terrible": 1,
    }
    assert bob["completeness"] == {
        "Excellent": 1,
        "Good": 2,
        "Average": 0,
        "Below Average": 1,
        "Poor": 1,
        "Terrible": 0,
    }
    assert (
        overall["n"] == 10 and overall["completeness"]["Good"] == 3 and overall["completeness"]["Poor"] == 2
    )
    assert alice["hallucinations"] == {"0": 2, "1": 1, "2": 1, "3+": 1}
    assert bob["hallucinations"] == {"0": 3, "1": 2, "2": 0, "3+": 0}
    assert alice["mean_score"] == pytest.approx(17 / 5) and bob["mean_score"] == pytest.approx(14 / 5)
    assert alice["mean_hallucinations"] == pytest.approx(7 / 5) and bob[
        "mean_hallucinations"
    ] == pytest.approx(0.4)
    assert alice["hallucination_rate"] == pytest.approx(0.6) and overall[
        "hallucination_rate"
    ] == pytest.approx(0.5)


def test_agreement_matches_hand_computation(rated: Path) -> None:
    ag = compute_report(rated)["agreement"]
    (pair,) = ag["pairs"]
    # common samples: scores (0-based) alice 0,4,1,2 / bob 1,4,1,3. Quadratic weights ((i-j)/5)^2: observed
    # disagreement 2/100, expected 4.125/25 -> kappa = 1 - 0.02/0.165 = 29/33.
    assert pair["raters"] == ["alice", "bob"] and pair["n"] == 4
    assert pair["completeness_kappa_quadratic"] == pytest.approx(29 / 33)
    assert pair["completeness_exact_agreement"] == pytest.approx(0.5)
    # Krippendorff: pairable units (0,1) (4,4) (1,1) (2,3); n_c = 1,3,1,1,2,0, n = 8; observed sum 10,
    # expected sum 632 -> alpha = 1 - 7 * 10 / 632 = 281/316.
    assert ag["units_rated_by_two_or_more"] == 4
    assert ag["completeness_alpha_ordinal"] == pytest.approx(281 / 316)
    assert -1.0 <= ag["hallucination_alpha_ordinal"] <= 1.0


def test_hallucination_rate_by_filter_outcome(rated: Path) -> None:
    fl = compute_report(rated)["filters"]
    by = fl["by_outcome"]
    assert list(by) == ["kept", "flagged", "reason:grounding_water", "reason:too_short"]
    assert by["kept"] == {
        "ratings": 6,
        "hallucination_rate": pytest.approx(2 / 6),
        "mean_hallucinations": 1.0,
    }
    assert by["flagged"]["ratings"] == 4 and by["flagged"]["hallucination_rate"] == pytest.approx(0.75)
    assert by["reason:grounding_water"]["hallucination_rate"] == 1.0
    assert by["reason:too_short"]["hallucination_rate"] == 0.5
    assert fl["samples"] == {
        "flagged_hallucinated": 2,
        "flagged_clean": 0,
        "kept_hallucinated": 2,
        "kept_clean": 2,
    }
    assert fl["recall"] == pytest.approx(0.5) and fl["precision"] == pytest.approx(1.0)


def test_report_files(rated: Path, tmp_path: Path) -> None:
    md_path = validation_report(rated, tmp_path / "rep")
    md = md_path.read_text()
    assert md_path.name == "report.md"
    assert "| alice | 5 |" in md and "| alice / bob | 4 | 0.879 |" in md
    assert "completeness 0.889" in md and "| flagged: grounding_water | 2 | 100.0 % |" in md
    assert "Filter recall (hallucinated samples that are flagged): 50.0 %" in md
    for name in ("completeness.png", "hallucinations.png", "filters.png"):
        assert f"]({name})" in md
        with Image.open(tmp_path / "rep" / name) as im:
            assert im.format == "PNG" and im.size[0] > 400
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["overall"]["n"] == 10
    assert validation_report(rated) == rated / "report" / "report.md"  # default place


def test_no_ratings_is_a_clear_error(exported: Path) -> None:
    with pytest.raises(InputError, match="no ratings yet"):
        validation_report(exported)


BAD = [
    ("{not json", "ratings/bob.json: not valid JSON \\(line 1 column 2"),
    ('["a"]', "ratings/bob.json: the top level must be an object"),
    ('{"rater": "bob", "ratings": {}}', "ratings/bob.json: version None is not supported"),
    ('{"version": 1, "rater": "alice", "ratings": {}}', "rater 'alice' does not match the file name"),
    ('{"version": 1, "rater": "bob", "ratings": []}', "'ratings' must be an object"),
    ('{"version": 1, "rater": "bob", "ratings": {"nope": {}}}', "sample 'nope' is not in samples.json"),
    (
        '{"version": 1, "rater": "bob", "ratings": {"ID": {"completeness": "Great"}}}',
        "ratings/bob.json: sample '.+': completeness 'Great' is not one of Excellent, Good",
    ),
    (
        '{"version": 1, "rater": "bob", "ratings": {"ID": {"completeness": "Good", '
        '"spans": [{"start": 5, "end": 3}]}}}',
        "span #0 \\[5, 3\\) is not a non-empty range",
    ),
    (
        '{"version": 1, "rater": "bob", "ratings": {"ID": '
        '{"spans": [{"start": 0, "end": 4, "text": "xxxx"}]}}}',
        "span #0 text 'xxxx' does not match caption\\[0:4\\]",
    ),
    (
        '{"version": 1, "rater": "bob", "ratings": {"ID": '
        '{"spans": [{"start": 0, "end": 4}, {"start": 2, "end": 6}]}}}',
        "overlap",
    ),
    ('{"version": 1, "rater": "bob", "ratings": {"ID": {"score": 3}}}', "unknown keys \\['score'\\]"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_malformed_rating_files_name_file_and_problem(exported: Path, text: str, message: str) -> None:
    sid = json.loads((exported / "samples.json").read_text())[0]["id"]
    (exported / "ratings" / "bob.json").write_text(text.replace('"ID"', json.dumps(sid)))
    with pytest.raises(RatingFileError, match=message):
        validation_report(exported)

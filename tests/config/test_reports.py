"""reports in the YAML: defaults, partial targets and weights over the defaults, refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.model.reports import DEFAULT_SCORE_WEIGHTS, Reports


def test_the_defaults() -> None:
    r = Reports()
    assert (r.weekly.weekday, r.weekly.at, r.bulletin.period, r.bulletin.at, r.brief.at) == (
        "wed",
        "09:07",
        "bimonth",
        "09:37",
        "08:37",
    )
    assert r.score_weights == DEFAULT_SCORE_WEIGHTS


def test_a_weight_or_target_left_out_keeps_its_default() -> None:
    r = Reports.model_validate({"satisfaction_weights": {"basically_satisfied": 0.8}, "targets": {"handle": 0.95}})
    assert r.satisfaction_weights == {"satisfied": 1.0, "basically_satisfied": 0.8, "dissatisfied": 0.0}
    assert r.targets["handle"] == 0.95
    assert r.targets["satisfaction"] == 0.9
    # the score's weights given replace the set: the rates they name are the score's
    assert Reports.model_validate({"score_weights": {"satisfaction": 1}}).score_weights == {"satisfaction": 1}


def test_chinese_weekdays() -> None:
    assert Reports.model_validate({"weekly": {"weekday": "周五"}}).weekly.weekday_index == 4


@pytest.mark.parametrize(
    "data",
    [
        {"targets": {"handle": 95}},
        {"satisfaction_weights": {"satisfied": 2}},
        {"score_weights": {"handle": 0}},
        {"score_weights": {"handle": -1, "solved": 1}},
        {"bulletin": {"period": "week"}},
        {"weekly": {"weekday": "someday"}},
        {"brief": {"at": "8:77"}},
        {"targets": {"unknown_rate": 0.5}},
    ],
)
def test_nonsense_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Reports.model_validate(data)


def test_every_target_amiss_is_told_at_once() -> None:
    with pytest.raises(ValidationError) as refused:
        Reports.model_validate({"targets": {"accept": 1.5, "foo": 0.3}, "satisfaction_weights": {"satisfied": 2}})
    errors = {".".join(map(str, e["loc"])): e["msg"] for e in refused.value.errors()}
    assert "a share between 0 and 1 (0.95 = 95%), not 1.5" in errors["targets.accept"]
    assert "targets.foo.[key]" in errors
    assert "not 2" in errors["satisfaction_weights.satisfied"]

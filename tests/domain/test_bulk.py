"""Building with the garbage collector paused: it is running again after the build, however the build ends, and a
build inside another (or beside it) does not resume it early."""

from __future__ import annotations

import gc

import pytest

from bot.domain.bulk import collector_paused


def _failing_build() -> None:
    with collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("the build failed")


def test_the_collector_runs_again_after_a_build_that_fails() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        _failing_build()
    assert gc.isenabled()


def test_an_inner_build_leaves_the_collector_paused_for_the_outer() -> None:
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_paused_before_stays_paused() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_builds_resume_the_collector_when_the_last_ends() -> None:
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first ends while the second still builds
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()

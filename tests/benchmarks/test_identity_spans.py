"""The identity benchmark's node windows: the matching span it sets beside Splink's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from benchmarks.identity import MATCHING_FIRST, MATCHING_LAST, DbtRun, _node_windows

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _node(unique_id: str, start: float | None, end: float | None) -> dict:
    return {
        "unique_id": unique_id,
        "timing": [
            {"name": "compile", "started_at": _at(0), "completed_at": _at(1)},
            {
                "name": "execute",
                "started_at": _at(start) if start is not None else None,
                "completed_at": _at(end) if end is not None else None,
            },
        ],
    }


def _run(windows) -> DbtRun:
    return DbtRun(
        seconds=0.0,
        peak_dbt_mb=0.0,
        peak_backends_mb=None,
        backends_at_peak=0,
        model_s=0.0,
        test_s=0.0,
        tests=0,
        slowest={},
        returncode=0,
        output="",
        windows=windows,
    )


def test_windows_are_the_models_execute_phases():
    nodes = [
        _node("model.customer_360.int_identity_evidence_part_1", 10, 40),
        _node("test.customer_360.not_null_x", 41, 42),
        _node("model.customer_360.never_ran", None, None),
    ]
    assert _node_windows(nodes) == {
        "int_identity_evidence_part_1": (T0 + timedelta(seconds=10), T0 + timedelta(seconds=40))
    }


def test_matching_span_runs_from_the_first_evidence_start_to_the_clusters_end():
    windows = _node_windows(
        [
            _node("model.customer_360.int_identity_evidence_part_1", 12, 50),
            _node("model.customer_360.int_identity_evidence_part_2", 10, 48),
            _node("model.customer_360.int_identity_clusters", 80, 87.5),
            _node("model.customer_360.dim_customer", 120, 150),
        ]
    )
    assert _run(windows).span_s(MATCHING_FIRST, MATCHING_LAST) == 77.5


def test_matching_span_is_unknown_without_its_nodes():
    windows = _node_windows([_node("model.customer_360.int_identity_evidence_part_1", 12, 50)])
    assert _run(windows).span_s(MATCHING_FIRST, MATCHING_LAST) is None
    assert _run({}).span_s(MATCHING_FIRST, MATCHING_LAST) is None

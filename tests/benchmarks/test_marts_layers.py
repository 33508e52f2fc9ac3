"""The marts benchmark's per-layer sums: a node's own seconds plus its tests', the history models
(models/history) counted with the dbt snapshots."""

from __future__ import annotations

from benchmarks.marts import per_layer


def test_layers_sum_models_and_their_tests_with_history_models_as_snapshots():
    manifest = {
        "nodes": {
            "model.p.stg_a": {"resource_type": "model", "fqn": ["p", "staging", "a", "stg_a"]},
            "model.p.fct_a": {"resource_type": "model", "fqn": ["p", "marts", "fct_a"]},
            "model.p.snap_h": {"resource_type": "model", "fqn": ["p", "history", "snap_h"]},
            "snapshot.p.snap_s": {"resource_type": "snapshot", "fqn": ["p", "snap_s"]},
            "test.p.unique_fct_a": {"resource_type": "test", "attached_node": "model.p.fct_a"},
            "test.p.index_snap_h": {"resource_type": "test", "attached_node": "model.p.snap_h"},
        },
        "unit_tests": {
            "unit_test.p.stg_a.case": {
                "resource_type": "unit_test",
                "depends_on": {"nodes": ["model.p.stg_a"]},
            }
        },
    }
    seconds = {
        "model.p.stg_a": 1.0,
        "unit_test.p.stg_a.case": 0.25,
        "model.p.fct_a": 4.0,
        "test.p.unique_fct_a": 2.0,
        "model.p.snap_h": 3.0,
        "test.p.index_snap_h": 0.5,
        "snapshot.p.snap_s": 8.0,
    }
    results = [{"unique_id": uid, "execution_time": s} for uid, s in seconds.items()]
    assert per_layer(results, manifest) == {
        "staging": 1.25,
        "intermediate": 0.0,
        "marts": 6.0,
        "snapshots": 11.5,
    }

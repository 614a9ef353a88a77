"""The SQLite results store: round trip, concurrent writers, rebuild from run directories."""

import json
import multiprocessing
from pathlib import Path

from fasbench.results.store import ResultRow, ResultsStore, rebuild, rows_from_record


def row(seed, learner="rfmeta", **changes):
    values = dict(
        run_id=f"{learner}-{seed}",
        selection="last",
        threshold_policy="test_eer",
        level="video",
        learner=learner,
        protocol="ICM_O",
        suite="synthetic",
        seed=seed,
        metrics={"HTER": 0.1 * seed},
        run_dir=f"runs/{seed}",
    )
    return ResultRow(**{**values, **changes})


def test_round_trip_filters_and_replace(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.put([row(0), row(1), row(1, selection="oracle")])
    assert [r.seed for r in store.rows(selection="last")] == [0, 1]
    assert store.rows(selection="oracle")[0].metrics == {"HTER": 0.1}
    store.put([row(1, metrics={"HTER": 0.5})])  # same key: replaced, not duplicated
    assert [r.metrics["HTER"] for r in store.rows(selection="last")] == [0.0, 0.5]
    assert store.distinct("selection") == ["last", "oracle"]


def _writer(path, learner, count):
    store = ResultsStore(path, busy_timeout=30)
    for seed in range(count):
        store.put([row(seed, learner=learner)])


def test_two_concurrent_writer_processes_lose_nothing(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(path, name, 60)) for name in ("a", "b")]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    rows = ResultsStore(path).rows()
    assert len(rows) == 120 and {r.learner for r in rows} == {"a", "b"}


def test_rebuild_reads_only_finished_runs(tmp_path):
    record = {
        "run_id": "abc",
        "learner": "rfmeta",
        "protocol": "ICM_O",
        "suite": "synthetic",
        "convention": "fasbench",
        "seed": 2,
        "config": {"config_id": "c0ffee000000", "preset": None, "budget": 10, "overrides": {}},
        "steps": 10,
        "train_seconds": 1.5,
        "finished": 0.0,
        "evaluations": [
            {
                "selection": "last",
                "policy": "test_eer",
                "level": "video",
                "metrics": {"HTER": 0.25},
                "threshold": 0.4,
                "steps": [10],
            }
        ],
    }
    finished = tmp_path / "runs" / "finished"
    unfinished = tmp_path / "runs" / "unfinished"
    for directory in (finished, unfinished):
        directory.mkdir(parents=True)
        (directory / "record.json").write_text(json.dumps(record | {"run_id": directory.name}))
    (finished / "done").write_text("abc\n")
    (finished / "evals.jsonl").write_text((Path(__file__).parent / "data" / "evaluations.jsonl").read_text())
    store = ResultsStore(tmp_path / "r.sqlite")
    store.put([row(9)])  # stale: gone after the rebuild
    assert rebuild(tmp_path / "r.sqlite", tmp_path / "runs") == (1, [])
    (only,) = store.rows()
    assert (only.run_id, only.seed, only.threshold, only.metrics) == ("finished", 2, 0.4, {"HTER": 0.25})
    assert rows_from_record(record, "d")[0].run_dir == "d"

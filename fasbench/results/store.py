"""The results store: SQLite (WAL) rows of finished runs, safe under concurrent writers, rebuildable.

One row per (run, model selection, threshold policy, score level); the run directories stay the truth
(``record.json``), so ``rebuild`` can always recreate the store from them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL,
    selection TEXT NOT NULL,
    threshold_policy TEXT NOT NULL,
    level TEXT NOT NULL,
    learner TEXT NOT NULL,
    protocol TEXT NOT NULL,
    suite TEXT NOT NULL,
    seed INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    threshold REAL,
    run_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    steps INTEGER,
    train_seconds REAL,
    finished REAL,
    PRIMARY KEY (run_id, selection, threshold_policy, level)
);
CREATE INDEX IF NOT EXISTS results_by_table ON results (suite, threshold_policy, selection, level);
"""
COLUMNS = (
    "run_id selection threshold_policy level learner protocol suite seed metrics threshold run_dir status "
    "steps train_seconds finished"
).split()


@dataclass(frozen=True)
class ResultRow:
    """One evaluated outcome of a run: metrics under one model selection, threshold policy and level."""

    run_id: str
    selection: str
    threshold_policy: str
    level: str
    learner: str
    protocol: str
    suite: str
    seed: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    threshold: float | None = None
    run_dir: str = ""
    status: str = "done"
    steps: int | None = None
    train_seconds: float | None = None
    finished: float | None = None

    def as_sql(self) -> tuple:
        values = asdict(self)
        values["metrics"] = json.dumps(dict(self.metrics), sort_keys=True)
        return tuple(values[c] for c in COLUMNS)

    @classmethod
    def from_sql(cls, row: tuple) -> ResultRow:
        values = dict(zip(COLUMNS, row, strict=True))
        values["metrics"] = json.loads(values["metrics"])
        return cls(**values)


class ResultsStore:
    """A SQLite file of ``ResultRow``s. Each write is one short IMMEDIATE transaction, retried while busy."""

    def __init__(self, path: str | Path, busy_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise FasbenchError(f"cannot open the results store {self.path}: {error}") from error
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            yield connection
        finally:
            connection.close()

    def _write(self, statements: Iterable[tuple[str, tuple]]) -> None:
        statements = list(statements)
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                with self._connect() as connection:
                    connection.execute("BEGIN IMMEDIATE")
                    try:
                        for sql, parameters in statements:
                            connection.execute(sql, parameters)
                        connection.execute("COMMIT")
                    except BaseException:
                        connection.execute("ROLLBACK")
                        raise
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise FasbenchError(f"cannot write the results store {self.path}: {error}") from error
                time.sleep(0.05)

    def put(self, rows: Iterable[ResultRow]) -> None:
        """Insert or replace rows (a rerun's evaluation replaces the previous one for the same key)."""
        placeholders = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT OR REPLACE INTO results ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        self._write((sql, row.as_sql()) for row in rows)

    def rows(self, **filters: Any) -> list[ResultRow]:
        """Rows whose columns equal ``filters`` (a None filter is ignored), ordered for stable output."""
        used = {k: v for k, v in filters.items() if v is not None}
        unknown = sorted(set(used) - set(COLUMNS))
        if unknown:
            raise FasbenchError(f"unknown result column(s): {', '.join(unknown)}")
        where = " AND ".join(f"{k} = ?" for k in used) or "1"
        sql = f"SELECT {', '.join(COLUMNS)} FROM results WHERE {where} ORDER BY learner, protocol, seed, run_id"
        with self._connect() as connection:
            return [ResultRow.from_sql(r) for r in connection.execute(sql, tuple(used.values()))]

    def distinct(self, column: str) -> list[Any]:
        if column not in COLUMNS:
            raise FasbenchError(f"unknown result column {column!r}")
        with self._connect() as connection:
            return [r[0] for r in connection.execute(f"SELECT DISTINCT {column} FROM results ORDER BY 1")]

    def clear(self) -> None:
        self._write([("DELETE FROM results", ())])


def rows_from_record(record: Mapping[str, Any], run_dir: str) -> list[ResultRow]:
    """The store rows of one run record (``record.json`` of a finished run)."""
    rows = []
    for evaluation in record["evaluations"]:
        rows.append(
            ResultRow(
                run_id=record["run_id"],
                selection=evaluation["selection"],
                threshold_policy=evaluation["policy"],
                level=evaluation["level"],
                learner=record["learner"],
                protocol=record["protocol"],
                suite=record["suite"],
                seed=int(record["seed"]),
                metrics=evaluation["metrics"],
                threshold=evaluation.get("threshold"),
                run_dir=run_dir,
                status=record.get("status", "done"),
                steps=record.get("steps"),
                train_seconds=record.get("train_seconds"),
                finished=record.get("finished"),
            )
        )
    return rows


def rebuild(store: ResultsStore, runs_root: str | Path) -> int:
    """Replace the store's rows with those of every finished run under ``runs_root``; returns the row count."""
    rows: list[ResultRow] = []
    for record_path in sorted(Path(runs_root).rglob("record.json")):
        if not (record_path.parent / "done").exists():
            continue
        record = json.loads(record_path.read_text())
        rows.extend(rows_from_record(record, str(record_path.parent)))
    store.clear()
    store.put(rows)
    return len(rows)

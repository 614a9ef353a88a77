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
    convention TEXT NOT NULL,
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
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run_dir TEXT NOT NULL,
    learner TEXT NOT NULL,
    protocol TEXT NOT NULL,
    suite TEXT NOT NULL,
    convention TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    step INTEGER,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_table ON results (suite, convention, threshold_policy, selection, level);
"""
SCHEMA_VERSION = 2  # PRAGMA user_version; a store of another version is refused until rebuilt
COLUMNS = (
    "run_id selection threshold_policy level learner protocol suite convention seed metrics threshold run_dir "
    "status steps train_seconds finished"
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
    convention: str = "fasbench"
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
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            if version not in (0, SCHEMA_VERSION) or (version == 0 and tables):
                raise FasbenchError(
                    f"the results store {self.path} has schema version {version}, this fasbench writes "
                    f"{SCHEMA_VERSION}; recreate it from the run directories with `fasbench results rebuild "
                    f"--out {self.path.parent}`"
                )
            connection.executescript(SCHEMA)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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

    def mark_run(
        self, identity: Mapping[str, Any], status: str, *, error: str | None = None, step: int | None = None
    ) -> None:
        """Record a run's status (``done`` or ``failed`` with its error); a failed run's result rows are removed."""
        keys = ("run_id", "run_dir", "learner", "protocol", "suite", "convention", "seed")
        values = tuple(identity[key] for key in keys) + (status, error, step, time.time())
        statements = [(f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * len(values))})", values)]
        if status != "done":
            statements.append(("DELETE FROM results WHERE run_id = ?", (identity["run_id"],)))
        self._write(statements)

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """The run table (each run's last status), optionally only those with ``status``."""
        sql = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY learner, protocol, seed"
        with self._connect() as connection:
            connection.row_factory = sqlite3.Row
            return [dict(row) for row in connection.execute(sql, (status,) if status else ())]

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
                convention=record["convention"],
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


def rebuild(store_path: str | Path, runs_root: str | Path) -> tuple[int, list[tuple[Path, str]]]:
    """Replace the store with the rows of every finished run under ``runs_root``.

    Returns the row count and the runs left out because their record is unreadable (path, why): a damaged
    run never stops the others from being indexed, and is never half-read.
    """
    from fasbench.runs.files import read_record

    rows: list[ResultRow] = []
    skipped: list[tuple[Path, str]] = []
    for done in sorted(Path(runs_root).rglob("done")):
        try:
            record = read_record(done.parent)
            rows.extend(rows_from_record(record, str(done.parent)))
        except (FasbenchError, KeyError, TypeError, ValueError) as error:
            skipped.append((done.parent / "record.json", str(error)))
    store_path = Path(store_path)
    for stale in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        stale.unlink(missing_ok=True)  # whatever its schema: the run directories are the truth
    ResultsStore(store_path).put(rows)
    return len(rows), skipped

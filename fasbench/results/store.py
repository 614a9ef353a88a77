"""The results store: SQLite (WAL) rows of finished runs, an index of the run directories, rebuildable.

One row per (run, model selection, threshold policy, score level), each carrying its configuration's
identity (config id, preset, overrides, budget, backbone, hyper-parameters, videos, code revision), so a
table never aggregates two configurations. The run directories stay the truth (``record.json``,
``evals.jsonl``): ``rebuild`` recreates the store from them, and a store of an older schema is rebuilt
when opened with its runs folder, never misread.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    config_id TEXT NOT NULL,
    preset TEXT,
    budget INTEGER,
    identity TEXT NOT NULL,
    selected_steps TEXT NOT NULL,
    summary TEXT NOT NULL,
    oracle INTEGER NOT NULL,
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
CREATE TABLE IF NOT EXISTS histories (
    run_id TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_table ON results (suite, convention, threshold_policy, selection, level);
"""
SCHEMA_VERSION = 3  # PRAGMA user_version; a store of another version is rebuilt from its run directories
COLUMNS = (
    "run_id selection threshold_policy level learner protocol suite convention seed metrics threshold run_dir "
    "status steps train_seconds finished config_id preset budget identity selected_steps summary oracle"
).split()
JSON_COLUMNS = ("metrics", "identity", "selected_steps", "summary")


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
    config_id: str = ""
    preset: str | None = None
    budget: int | None = None
    identity: Mapping[str, Any] = field(default_factory=dict)  # fasbench.runs.config.identity of the run
    selected_steps: list[int] = field(default_factory=list)  # the evaluations whose metrics these are
    summary: Mapping[str, Any] = field(default_factory=dict)  # what selection chooses on, at those evaluations
    oracle: bool = False  # the selection looked at the target domain

    def as_sql(self, encoded: dict[int, str] | None = None) -> tuple:
        """The row's values in COLUMNS order; ``encoded`` caches the JSON of values shared by many rows (a run's
        identity), keyed by object id."""
        values = []
        for column in COLUMNS:
            value = getattr(self, column)
            if column in JSON_COLUMNS:
                if encoded is not None and id(value) in encoded:
                    value = encoded[id(value)]
                else:
                    text = json.dumps(value, sort_keys=True)
                    if encoded is not None:
                        encoded[id(value)] = text
                    value = text
            elif column == "oracle":
                value = int(value)
            values.append(value)
        return tuple(values)

    @classmethod
    def from_sql(cls, row: tuple) -> ResultRow:
        values = dict(zip(COLUMNS, row, strict=True))
        for name in JSON_COLUMNS:
            values[name] = json.loads(values[name])
        values["oracle"] = bool(values["oracle"])
        return cls(**values)

    def field(self, path: str) -> Any:
        """A recorded value by dotted path (``budget``, ``preset``, ``hparams.lr``, ``backbone.width``, ``seed``)."""
        head, _, rest = path.partition(".")
        if not rest and head in COLUMNS:
            return getattr(self, head)
        value: Any = self.identity
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise KeyError(path)
            value = value[part]
        return value


class ResultsStore:
    """A SQLite file of ``ResultRow``s. Each write is one short IMMEDIATE transaction, retried while busy."""

    def __init__(self, path: str | Path, busy_timeout: float = 60.0, *, runs_root: str | Path | None = None) -> None:
        """Open (or create) the store at ``path``. A store of another schema version is rebuilt from
        ``runs_root`` when given (with a message), and refused otherwise."""
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            outdated = version not in (0, SCHEMA_VERSION) or (version == 0 and tables)
        if outdated and runs_root is None:
            raise FasbenchError(
                f"the results store {self.path} has schema version {version}, this fasbench writes "
                f"{SCHEMA_VERSION}; recreate it from the run directories with `fasbench results rebuild "
                f"--out {self.path.parent}`"
            )
        if outdated:
            from fasbench.console import get_logger

            count, skipped = rebuild(self.path, runs_root)
            get_logger("fasbench.results").warning(
                "the results store %s had schema version %s (this fasbench writes %s): rebuilt from the run "
                "directories, %d rows (%d runs unreadable)", self.path, version, SCHEMA_VERSION, count, len(skipped),
            )  # fmt: skip
        with self._connect() as connection:
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
        """Insert or replace rows (a rerun's evaluation replaces the previous one for the same key). Run
        directories are stored relative to the store's folder, so the folder can move between machines."""
        placeholders = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT OR REPLACE INTO results ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        rows = list(rows)
        encoded: dict[int, str] = {}  # one JSON text per shared identity object (rows keep them alive meanwhile)
        self._write(
            (sql, dataclasses.replace(row, run_dir=self._relative(row.run_dir)).as_sql(encoded)) for row in rows
        )

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - a store lives as long as one command
    def _relative(self, run_dir: str) -> str:
        if not run_dir:
            return run_dir
        return os.path.relpath(Path(run_dir).resolve(), self.path.parent.resolve())

    def _absolute(self, row: ResultRow) -> ResultRow:
        if not row.run_dir or Path(row.run_dir).is_absolute():
            return row
        return dataclasses.replace(row, run_dir=str(self.path.parent / row.run_dir))

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

    def forget(self, run_id: str) -> None:
        """Remove everything the store holds of a run (``--restart`` discards it)."""
        self._write(
            [(f"DELETE FROM {table} WHERE run_id = ?", (run_id,)) for table in ("results", "runs", "histories")]
        )

    def put_histories(self, histories: Mapping[str, bytes]) -> None:
        """Keep runs' evaluation histories (``fasbench.selection.History.to_bytes``), so a selection rule written
        later applies to them from the store alone."""
        sql = "INSERT OR REPLACE INTO histories (run_id, data) VALUES (?, ?)"
        self._write((sql, (run_id, data)) for run_id, data in histories.items())

    def histories(self, run_ids: Iterable[str]) -> dict[str, bytes]:
        """The stored histories of ``run_ids`` (those the store has)."""
        wanted = list(run_ids)
        found: dict[str, bytes] = {}
        with self._connect() as connection:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                sql = f"SELECT run_id, data FROM histories WHERE run_id IN ({', '.join('?' * len(chunk))})"
                found.update({run_id: data for run_id, data in connection.execute(sql, chunk)})
        return found

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
            return [self._absolute(ResultRow.from_sql(r)) for r in connection.execute(sql, tuple(used.values()))]

    def distinct(self, column: str) -> list[Any]:
        if column not in COLUMNS:
            raise FasbenchError(f"unknown result column {column!r}")
        with self._connect() as connection:
            return [r[0] for r in connection.execute(f"SELECT DISTINCT {column} FROM results ORDER BY 1")]

    def clear(self) -> None:
        self._write([("DELETE FROM results", ())])


def rows_from_record(record: Mapping[str, Any], run_dir: str) -> list[ResultRow]:
    """The store rows of one run record (``record.json`` of a finished run)."""
    missing = [key for key in ("config", "convention", "evaluations") if key not in record]
    if missing:
        raise FasbenchError(
            f"the record lacks {', '.join(missing)}: it was made by an older fasbench; rerun the run with --restart"
        )
    identity = record["config"]
    run = ResultRow(
        run_id=record["run_id"],
        selection="",
        threshold_policy="",
        level="",
        learner=record["learner"],
        protocol=record["protocol"],
        suite=record["suite"],
        convention=record["convention"],
        seed=int(record["seed"]),
        run_dir=run_dir,
        status=record.get("status", "done"),
        steps=record.get("steps"),
        train_seconds=record.get("train_seconds"),
        finished=record.get("finished"),
        config_id=identity["config_id"],
        preset=identity.get("preset"),
        budget=identity.get("budget"),
        identity=identity,
    )
    return [with_result(run, evaluation) for evaluation in record["evaluations"]]


def with_result(run: ResultRow, result: Mapping[str, Any]) -> ResultRow:
    """A row of ``run`` (any of its rows) holding ``result``: one selection rule's outcome under one threshold
    policy and level (``fasbench.selection.selected``)."""
    return dataclasses.replace(
        run,
        selection=result["selection"],
        threshold_policy=result["policy"],
        level=result["level"],
        metrics=result["metrics"],
        threshold=result.get("threshold"),
        selected_steps=list(result.get("steps", [])),
        summary=result.get("summary", {}),
        oracle=bool(result.get("oracle", False)),
    )


def read_finished(directory: Path) -> tuple[dict[str, Any], list[ResultRow], bytes]:
    """A finished run directory's record, its store rows and its evaluation history (raises when damaged)."""
    from fasbench.runs.files import read_record
    from fasbench.selection import read_evaluations

    record = read_record(directory)
    return record, rows_from_record(record, str(directory)), read_evaluations(directory / "evals.jsonl").to_bytes()


def _finished_runs(
    runs_root: str | Path, known: set[str] = frozenset()
) -> Iterator[tuple[dict[str, Any], list[ResultRow], bytes] | tuple[Path, str]]:
    """Every finished run directory under ``runs_root`` whose id is not in ``known``: (record, its store rows,
    its evaluation history), or (record path, why) for one whose record is damaged (never half-read)."""
    for done in sorted(Path(runs_root).rglob("done")):
        try:
            if done.read_text(encoding="utf-8").split()[0] in known:
                continue
        except (OSError, IndexError):
            pass  # read_record names what is wrong with it
        try:
            yield read_finished(done.parent)
        except (FasbenchError, KeyError, TypeError, ValueError) as error:
            yield done.parent / "record.json", str(error)


def add_missing_runs(store: ResultsStore, runs_root: str | Path) -> tuple[int, list[tuple[Path, str]]]:
    """Index the finished run directories under ``runs_root`` that the store does not have (runs launched
    elsewhere, a store that was lost): (runs added, runs left out because their record is damaged)."""
    added, skipped = 0, []
    for found in _finished_runs(runs_root, set(store.distinct("run_id"))):
        if len(found) == 2:
            skipped.append(found)
            continue
        record, rows, history = found
        store.put(rows)
        store.put_histories({record["run_id"]: history})
        added += 1
    return added, skipped


def rebuild(store_path: str | Path, runs_root: str | Path) -> tuple[int, list[tuple[Path, str]]]:
    """Replace the store with the rows of every finished run under ``runs_root``.

    Returns the row count and the runs left out because their record is unreadable (path, why): a damaged
    run never stops the others from being indexed, and is never half-read.
    """
    rows: list[ResultRow] = []
    histories: dict[str, bytes] = {}
    skipped: list[tuple[Path, str]] = []
    for found in _finished_runs(runs_root):
        if len(found) == 2:
            skipped.append(found)
            continue
        record, run_rows, history = found
        rows.extend(run_rows)
        histories[record["run_id"]] = history
    store_path = Path(store_path)
    for stale in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        stale.unlink(missing_ok=True)  # whatever its schema: the run directories are the truth
    store = ResultsStore(store_path)
    store.put(rows)
    store.put_histories(histories)
    return len(rows), skipped


def identity_row(row: ResultRow) -> dict[str, Any]:
    """The configuration a row belongs to, for listings: id, preset, budget and the overrides given."""
    return {"config_id": row.config_id, "preset": row.preset, "budget": row.budget, **row.identity}

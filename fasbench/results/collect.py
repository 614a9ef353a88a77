"""Results of a selection rule that the store does not hold yet, computed from the runs' recorded evaluations.

A rule added after runs finished (a plugin, or ``last_k_mean:5``) is applied to each finished run's
evaluation history: the compact copy the store keeps, else the run directory's ``evals.jsonl``; the rows go
into the store, so the next table reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fasbench.results.store import ResultsStore, with_result
from fasbench.selection import History, read_evaluations, rules, selected


def ensure_selection(store: ResultsStore, name: str, plugins: Any, **filters: Any) -> int:
    """Put the rows of selection rule ``name`` for every finished run (matching ``filters``) that lacks them;
    returns how many runs were added. An unknown rule is refused with the known ones."""
    rule = rules(plugins, [name])
    have = {row.run_id for row in store.rows(selection=name, **filters)}
    finished = {row.run_id: row.run_dir for row in store.rows(selection="last", level="video", **filters)}
    missing = sorted(set(finished) - have)
    stored = store.histories(missing)
    template = {
        row.run_id: row for row in store.rows(selection="last", level="video", **filters) if row.run_id in missing
    }
    added = []
    for run_id in missing:
        if run_id in stored:
            history = History.from_bytes(stored[run_id])
        else:
            history = read_evaluations(Path(template[run_id].run_dir) / "evals.jsonl")
            store.put_histories({run_id: history.to_bytes()})
        added += [with_result(template[run_id], result) for result in selected(history, rule)]
    store.put(added)
    return len({row.run_id for row in added})

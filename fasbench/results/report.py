"""``fasbench report``: the results store as a static HTML site (one folder, opens from disk, no network).

- ``index.html``: the leaderboard under every evaluation the store holds (suite, convention, selection rule,
  threshold policy, level; switchable and sortable on the page, its caption spelled out, significance marks
  on the default and the papers' evaluations), paper vs reproduced, and per protocol: ROC curves, score
  histograms, APCER per attack type, the adversarial stress test's HTER against eps, the runs.
- ``runs/<run id>/index.html``: a run's configuration, environment, training curves (``evals.jsonl``) and
  losses (``log.txt``), and copies of its small files.
- ``plots/*.svg``: matplotlib's SVG. The page's script and style are inlined (``report.js``, ``report.css``).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from fasbench import __version__, atomic
from fasbench.benchmark import BenchmarkSpec
from fasbench.errors import FasbenchError
from fasbench.results.leaderboard import Leaderboard
from fasbench.results.plots import pyplot, save, slug, write_plots
from fasbench.results.render import column_title, format_cell, format_extra, metric_title
from fasbench.results.store import ResultRow, ResultsStore
from fasbench.results.tables import (
    Choice,
    Evaluation,
    default_evaluation,
    describe_evaluation,
    evaluation_key,
    evaluations_in,
    honest_evaluation,
    store_board,
    with_reported,
)

MARKER = "fasbench-report.json"  # what makes a folder an earlier report, replaceable
RUN_FILES = ("config.json", "environment.json", "record.json", "evals.jsonl", "log.txt", "videos.json", "attack.json")
_STEP_LOSSES = re.compile(r" step (\d+): (?!evaluation)(.*)$")


def build_report(
    store: ResultsStore,
    spec: BenchmarkSpec,
    plugins: Any,
    site: Path,
    *,
    runs_root: str | Path,
    suite: str | None = None,
    metrics: Sequence[str] = ("HTER", "AUC"),
    significance: int = 1000,
    choice: Choice | None = None,
) -> Path:
    """Write the report of ``store`` into ``site`` and return its index.html. The folder is written beside
    ``site`` and swapped in whole (two renames), so a failure leaves the earlier report as it was."""
    site = Path(site).absolute()
    _check_replaceable(site)
    default = default_evaluation(store, spec, suite)
    evaluations = evaluations_in(store, plugins, [default.selection])
    if default not in evaluations:
        raise FasbenchError(
            f"the results store has no finished run under the default evaluation ({default.label()}) of suite "
            f"{default.suite}; run `fasbench run LEARNER --protocol P --suite {default.suite}` first"
        )
    evaluations.remove(default)
    site.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{site.name}.", dir=site.parent))
    try:
        (staging / "plots").mkdir()
        _write(
            store, spec, plugins, staging, default, evaluations, runs_root, metrics, significance, choice or Choice()
        )
        if site.exists():
            earlier = Path(tempfile.mkdtemp(prefix=f".{site.name}.old.", dir=site.parent))
            site.rename(earlier / "report")
            staging.rename(site)
            shutil.rmtree(earlier)
        else:
            staging.rename(site)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return site / "index.html"


def _write(
    store: ResultsStore,
    spec: BenchmarkSpec,
    plugins: Any,
    staging: Path,
    default: Evaluation,
    evaluations: list[Evaluation],
    runs_root: str | Path,
    metrics: Sequence[str],
    significance: int,
    choice: Choice,
) -> None:
    boards, default_rows, shown = [], [], set()
    for evaluation in [default, *evaluations]:
        try:
            board, rows = store_board(
                store, spec, plugins, evaluation, runs_root=runs_root, metrics=metrics, choice=choice
            )
        except FasbenchError:
            if evaluation == default:
                raise  # says which configurations the results hold, and how to choose one
            continue  # nothing of this evaluation in the chosen configuration
        papers = {evaluation_key(spec.paper_evaluation(learner)) for learner in board.learners}
        if significance and rows and (evaluation == default or evaluation_key(evaluation) in papers):
            from fasbench.results.significance import mark_ties

            try:
                board = mark_ties(board, rows, plugins, resamples=significance)
            except FasbenchError as error:
                board = dataclasses.replace(board, note=f"{board.note} Significance not tested: {error}".strip())
        board = with_reported(board, spec)
        boards.append((evaluation, board))
        shown.update(row.run_id for row in rows)
        if evaluation == default:
            default_rows = rows
    default_board = boards[0][1]
    sections = [
        _leaderboard_section(boards, default),
        _paper_section(boards, spec, default),
        _protocol_sections(default_board, default_rows, default, staging),
        _runs_section(store, shown, staging),
    ]
    page = _page(
        "fasbench report",
        _header(sorted({e.suite for e, _ in boards}), default, len(shown)) + "".join(sections),
        data={"boards": [_board_json(evaluation, board) for evaluation, board in boards], "default": _as(default)},
    )
    atomic.write_text(staging / "index.html", page)
    atomic.write_json(staging / MARKER, {"fasbench": __version__, "runs": str(runs_root), "default": _as(default)})


def _check_replaceable(site: Path) -> None:
    """The report folder is replaced whole: refuse one that holds anything but an earlier report."""
    if site.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        raise FasbenchError(f"--output {site} is the current folder or above it; give a folder for the report")
    if not site.exists():
        return
    if not site.is_dir():
        raise FasbenchError(f"--output {site} is a file; give a folder for the report")
    if any(site.iterdir()) and not (site / MARKER).is_file():
        raise FasbenchError(
            f"--output {site} is a folder that holds other files (no {MARKER}: not a fasbench report); the report "
            "replaces its folder whole, so give a new or empty folder"
        )


def _as(evaluation: Evaluation) -> dict[str, str]:
    return {k: getattr(evaluation, k) for k in ("suite", "convention", "selection", "threshold_policy", "level")}


# -- the leaderboard, as data for the page's script ----------------------------------------------------------
def _board_json(evaluation: Evaluation, board: Leaderboard) -> dict[str, Any]:
    columns = [(c, m) for c in board.columns for m in board.metrics]
    rows = []
    for learner in board.learners:
        cells = {}
        for column, metric in columns:
            cell = board.cells.get((learner, column, metric))
            if cell is not None:
                cells[f"{column}|{metric}"] = {
                    "mean": cell.mean, "std": cell.std, "n": cell.n, "best": cell.best, "tied": cell.tied,
                    "text": format_cell(cell),
                }  # fmt: skip
        extra = {
            kind: {f"{c}|{m}": format_extra(kind, values.get((c, m))) for c, m in columns}
            for kind, values in board.reported_rows(learner)
        }
        rows.append({"learner": learner, "cells": cells, **extra})
    return {
        **_as(evaluation),
        "columns": [
            {
                "key": f"{c}|{m}",
                "protocol": column_title(c),
                "metric": metric_title(board, m),
                "higher": board.higher_is_better.get(m, False),
            }
            for c, m in columns
        ],  # fmt: skip
        "rows": rows,
        "caption": board.caption,
        "tested": bool(board.significance),
    }


def _leaderboard_section(boards: list, default: Evaluation) -> str:
    selects = "".join(
        f'<label>{html.escape(title)} <select id="pick-{key}" data-key="{key}"></select></label>'
        for key, title in (
            ("suite", "suite"), ("convention", "data convention"), ("selection", "model selection"),
            ("threshold_policy", "threshold policy"), ("level", "score level"),
        )
    )  # fmt: skip
    return (
        '<section id="leaderboard"><h2>Leaderboard</h2>'
        f'<div class="controls">{selects}<label><input type="checkbox" id="show-reported" checked> reported numbers '
        "and gaps</label></div>"
        '<p class="hint">Click a metric to sort by it; every evaluation the results hold is in the lists. '
        f"Significance marks (†) are computed for the default evaluation ({html.escape(default.label())}) and the "
        "papers' evaluations.</p>"
        '<div class="scroll"><table id="board" class="board"></table></div><p id="caption" class="caption"></p>'
        f'<p id="missing" class="note" hidden>No table for this combination ({len(boards)} evaluations exist).</p>'
        "</section>"
    )


# -- paper vs reproduced -------------------------------------------------------------------------------------
def _paper_section(boards: list, spec: BenchmarkSpec, default: Evaluation) -> str:
    """Per learner with reported numbers: the paper's, fasbench's under the paper's own evaluation and under
    the honest one (checkpoint and threshold on source validation), each with its gap; the default suite."""
    by_key = {(*evaluation_key(e), e.level): board for e, board in boards if e.suite == default.suite}
    default_board = _board_under(by_key, default, default)
    learners = list(dict.fromkeys(lrn for board in by_key.values() for lrn in board.learners))
    honest = honest_evaluation(spec, default.convention, default.level)
    parts = []
    for learner in learners:
        reported = spec.learner(learner).reported
        if reported is None:
            continue
        paper = spec.paper_evaluation(learner)
        protocols = [p for p in default_board.protocols_shown if p in reported.values]
        metrics = [m for m in default_board.metrics if any(m in reported.values[p] for p in protocols)]
        if not protocols or not metrics:
            continue
        header = "".join(
            f"<th>{html.escape(column_title(p))} {html.escape(m)}</th>" for p in protocols for m in metrics
        )
        lines = [f'<tr><th class="label">{html.escape(reported.source)}</th>' + "".join(
            f"<td>{format_extra('reported', reported.values[p].get(m))}</td>" for p in protocols for m in metrics
        ) + "</tr>"]  # fmt: skip
        rows = [
            (f"fasbench, the paper's evaluation ({describe_evaluation(paper)})", _board_under(by_key, paper, default))
        ]
        if honest is not None:
            title = f"fasbench, honest ({describe_evaluation(honest)}: never the target's labels)"
            rows.append((title, _board_under(by_key, honest, default)))
        for title, board in rows:
            values, gaps = [], []
            for p in protocols:
                for m in metrics:
                    cell = board.cells.get((learner, p, m)) if board is not None else None
                    values.append(f"<td>{html.escape(format_cell(cell))}</td>")
                    value = reported.values[p].get(m)
                    gap = None if cell is None or value is None else cell.mean - value
                    gaps.append(f"<td>{format_extra('gap', gap)}</td>")
            lines.append(f'<tr><th class="label">{html.escape(title)}</th>{"".join(values)}</tr>')
            lines.append(f'<tr class="gap"><th class="label">gap (points)</th>{"".join(gaps)}</tr>')
        parts.append(
            f'<h3>{html.escape(learner)}</h3><table class="paper"><tr><th></th>{header}</tr>{"".join(lines)}</table>'
        )
    caveat = (
        "The papers' numbers are on the four licensed datasets; "
        + (
            f"this report's suite is {html.escape(default.suite)}, so no gap here says anything about a paper. "
            if default.suite != "real"
            else ""
        )  # fmt: skip
        + "Every paper chose its checkpoint and its threshold on the target domain (the paper's evaluation row); "
        + (
            "the honest row chooses both on held-out source validation and never reads the target's labels. "
            if honest is not None
            else f"convention {html.escape(default.convention)} has no source validation, so there is no honest row. "
        )
        + "A dash: no run under that evaluation (the paper's: `fasbench run LEARNER --mode paper`)."
    )
    return (
        '<section id="paper"><h2>Paper vs reproduced</h2>'
        f'<p class="caption">{caveat}</p>{"".join(parts) or "<p>No shown learner has reported numbers.</p>"}</section>'
    )


def _board_under(by_key: Mapping[tuple, Leaderboard], evaluation: Any, default: Evaluation) -> Leaderboard | None:
    return by_key.get((*evaluation_key(evaluation), default.level))


# -- per protocol ----------------------------------------------------------------------------------------------
def _protocol_sections(board: Leaderboard, rows: Sequence[ResultRow], evaluation: Evaluation, site: Path) -> str:
    plots = site / "plots"
    write_plots(rows, board.protocols_shown, board.learners, plots, fmt="svg")
    parts = []
    for protocol in board.protocols_shown:
        learners = [lrn for lrn in board.learners if any(r.protocol == protocol and r.learner == lrn for r in rows)]
        hists = "".join(
            f'<figure><img src="plots/hist_{protocol}_{slug(lrn)}.svg" alt="score histogram of {html.escape(lrn)}">'
            "</figure>"
            for lrn in learners
        )
        attack = _attack_plot(rows, protocol, learners, board.learners, evaluation, plots)
        parts.append(
            f'<section class="protocol" id="protocol-{protocol}"><h3>{html.escape(column_title(protocol))}</h3>'
            f'<div class="figures"><figure><img src="plots/roc_{protocol}.svg" alt="ROC curves on {protocol}">'
            f"<figcaption>ROC per learner: mean TPR over seeds on a common FPR grid, band ± 1 std.</figcaption>"
            f"</figure>{hists}</div><h4>APCER per attack type</h4>{_apcer_table(rows, protocol, learners)}"
            f"{attack}{_run_list(rows, protocol, learners)}</section>"
        )
    return (
        f'<section id="protocols"><h2>Per protocol</h2><p class="caption">Evaluation: {html.escape(evaluation.label())}'
        f" (the default), suite {html.escape(evaluation.suite)}, convention {html.escape(evaluation.convention)}; the "
        f"leaderboard's configuration.</p>{''.join(parts)}</section>"
    )


def attack_family(attack_type: str) -> str:
    """``print_warped`` -> ``print``; ``replay_ipad`` -> ``replay``: the coarse instrument of a finer type."""
    return attack_type.split("_", 1)[0]


def apcer_by_type(rows: Sequence[ResultRow]) -> dict[str, list[float]]:
    """Per attack type (the coarse families and the datasets' finer types), each run's APCER at its own
    threshold: the share of that type's spoofs scored >= the threshold (mean over a rule's evaluations)."""
    from fasbench.results.significance import run_scores

    rates: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        loaded, _, _ = run_scores(row, None)
        per_run: dict[str, list[float]] = defaultdict(list)
        for sample, threshold in zip(loaded.samples, loaded.thresholds, strict=True):
            spoof = sample.label == 0
            types = sample.attack_type[spoof]
            accepted = sample.score[spoof] >= threshold
            groups = {name: types == name for name in np.unique(types)}
            for family in sorted({attack_family(t) for t in groups}):
                members = np.asarray([attack_family(t) == family for t in types])
                groups.setdefault(family, members)
            for name, members in groups.items():
                per_run[name].append(float(accepted[members].mean()))
        for name, values in per_run.items():
            rates[name].append(float(np.mean(values)))
    return dict(rates)


def _apcer_table(rows: Sequence[ResultRow], protocol: str, learners: Sequence[str]) -> str:
    table = {lrn: apcer_by_type([r for r in rows if r.protocol == protocol and r.learner == lrn]) for lrn in learners}
    names = sorted({name for rates in table.values() for name in rates})
    families = [n for n in names if "_" not in n]
    finer = [n for n in names if "_" in n]
    columns = families + finer
    header = "".join(f'<th class="{"family" if n in families else "finer"}">{html.escape(n)}</th>' for n in columns)
    body = ""
    for learner, rates in table.items():
        cells = []
        for name in columns:
            values = rates.get(name)
            if not values:
                cells.append("<td>–</td>")
                continue
            spread = f" ± {100 * np.std(values, ddof=1):.1f}" if len(values) > 1 else ""
            cells.append(f"<td>{100 * np.mean(values):.1f}{spread}</td>")
        body += f"<tr><th>{html.escape(learner)}</th>{''.join(cells)}</tr>"
    return (
        f'<table class="apcer"><tr><th>learner</th>{header}</tr>{body}</table><p class="caption">APCER in %: the '
        "share of each attack type's spoofs accepted as live at the run's own threshold, mean ± std over seeds; "
        "coarse instruments (print, replay) first, then the dataset's finer types.</p>"
    )


def _attack_plot(
    rows: Sequence[ResultRow],
    protocol: str,
    learners: Sequence[str],
    order: Sequence[str],
    evaluation: Evaluation,
    plots: Path,
) -> str:
    """HTER against eps per direction (mean over the attacked seeds), from the runs' attack.json."""
    from fasbench.attack import DIRECTIONS, read_attack

    key = f"{evaluation.threshold_policy}/{evaluation.level}"
    curves: dict[tuple[str, str, int], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    steps_seen = set()
    for row in rows:
        if row.protocol != protocol or row.learner not in learners:
            continue
        found = read_attack(row.run_dir)
        if not found or key not in found.get("clean", {}) or found.get("checkpoint_step") != row.steps:
            continue  # not attacked under this policy and level, or not this run's final checkpoint
        clean = found["clean"][key]["metrics"]["HTER"]
        results = [
            r
            for r in found["results"]
            if (r["threshold_policy"], r["level"]) == (evaluation.threshold_policy, evaluation.level) and r["eps"] > 0
        ]
        for direction, steps in {(r["direction"], r["steps"]) for r in results}:
            curves[(row.learner, direction, steps)][0.0].append(clean)
        for result in results:
            steps_seen.add((result["attack"], result["steps"]))
            curves[(row.learner, result["direction"], result["steps"])][result["eps"]].append(result["metrics"]["HTER"])
    if not curves:
        return ""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for panel, direction in zip(axes, DIRECTIONS, strict=True):
        for (learner, towards, steps), points in sorted(curves.items()):
            if towards != direction:
                continue
            eps = sorted(points)
            mean = np.asarray([np.mean(points[e]) for e in eps])
            colour = f"C{list(order).index(learner) % 10}"
            style = dict(linestyle="--", label=f"{learner} (FGSM)") if steps == 1 else dict(label=learner)
            panel.plot(eps, 100 * mean, marker="o", color=colour, **style)
        title = "spoof → live (the attacker's direction)" if direction == "spoof_to_live" else "live → spoof"
        panel.set(title=title, xlabel="eps (/255)")
        panel.grid(alpha=0.3)
    axes[0].set_ylabel(f"HTER (%) at the clean threshold ({evaluation.threshold_policy})")
    axes[0].legend(fontsize=8)
    path = plots / f"attack_{protocol}.svg"
    save(figure, path)
    attacks = ", ".join(f"{name} {steps} step{'s' * (steps > 1)}" for name, steps in sorted(steps_seen))
    return (
        f'<h4>Adversarial stress test</h4><figure><img src="plots/{path.name}" alt="HTER against eps on {protocol}">'
        f"<figcaption>HTER against the L-infinity budget ({html.escape(attacks)}; eps 0 = clean; at each eps the "
        "strongest of the budgets attacked up to it), mean over the attacked seeds. The attacked model is each run's "
        "final checkpoint, at the threshold its last evaluation chose under the policy, whatever the table's "
        "selection rule. A stress test: digital perturbations are outside the ISO/IEC 30107 presentation-attack "
        "threat model (`fasbench attack RUN_DIR`).</figcaption></figure>"
    )


def _run_list(rows: Sequence[ResultRow], protocol: str, learners: Sequence[str]) -> str:
    links = [
        f'<a href="runs/{row.run_id}/index.html">{html.escape(row.learner)} seed {row.seed}</a>'
        for learner in learners
        for row in sorted((r for r in rows if r.protocol == protocol and r.learner == learner), key=lambda r: r.seed)
    ]
    return f'<p class="runs">Runs: {" · ".join(links)}</p>'


# -- per run ---------------------------------------------------------------------------------------------------
def _runs_section(store: ResultsStore, shown: set[str], site: Path) -> str:
    """A page per run whose numbers a table of the report shows, and the list of them."""
    rows = {r.run_id: r for r in store.rows(selection="last", level="video") if r.run_id in shown}
    lines = []
    for row in sorted(rows.values(), key=lambda r: (r.learner, r.protocol, r.seed)):
        _run_page(row, site / "runs" / row.run_id)
        seconds = f"{row.train_seconds:.0f}" if row.train_seconds is not None else "?"
        lines.append(
            f'<tr><td><a href="runs/{row.run_id}/index.html">{row.run_id}</a></td><td>{html.escape(row.learner)}</td>'
            f"<td>{html.escape(row.protocol)}</td><td>{html.escape(row.convention)}</td><td>{row.seed}</td>"
            f"<td>{row.steps}</td><td>{seconds}</td><td>{html.escape(row.preset or 'none')}</td></tr>"
        )
    return (
        '<section id="runs"><h2>Runs</h2><table class="runs"><tr><th>run</th><th>learner</th><th>protocol</th>'
        "<th>convention</th><th>seed</th><th>steps</th><th>training s</th><th>preset</th></tr>"
        f"{''.join(lines)}</table></section>"
    )


def read_losses(log: Path) -> dict[str, tuple[list[int], list[float]]]:
    """The per-step losses a run's log.txt holds (``step N: name=value ...``), by name."""
    losses: dict[str, tuple[list[int], list[float]]] = {}
    if not log.exists():
        return losses
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        found = _STEP_LOSSES.search(line)
        if not found:
            continue
        step = int(found.group(1))
        for item in found.group(2).split():
            name, _, value = item.partition("=")
            try:
                number = float(value)
            except ValueError:
                continue
            steps, values = losses.setdefault(name, ([], []))
            steps.append(step)
            values.append(number)
    return losses


def _run_page(row: ResultRow, folder: Path) -> None:
    from fasbench.selection import read_evaluations

    folder.mkdir(parents=True, exist_ok=True)
    source = Path(row.run_dir)
    copied = []
    for name in RUN_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)
            copied.append(name)
    plt = pyplot()
    history = read_evaluations(source / "evals.jsonl")
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for index, name in enumerate(("AUC", "HTER")):
        column = ("AUC", "EER", "HTER").index(name)
        axes[index].plot(history.steps, 100 * history.target[:, column], marker=".", label=f"target {name}")
        if history.source_val is not None and name == "AUC":
            axes[index].plot(history.steps, 100 * history.source_val[:, 0], marker=".", label="source-val AUC")
        axes[index].set(xlabel="step", ylabel=f"{name} (%)", title=f"{name} per evaluation (video, test_eer)")
        axes[index].legend(fontsize=8)
        axes[index].grid(alpha=0.3)
    save(figure, folder / "evaluations.svg")
    losses = read_losses(source / "log.txt")
    figure, axes = plt.subplots(figsize=(9, 3.4))
    for name, (steps, values) in losses.items():
        axes.plot(steps, values, label=name)
    axes.set(xlabel="step", ylabel="loss", title="training losses (log.txt, every logged step)")
    if losses:
        axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    save(figure, folder / "losses.svg")
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    environment = (
        json.loads((source / "environment.json").read_text(encoding="utf-8"))
        if (source / "environment.json").is_file()
        else {}
    )
    links = " · ".join(f'<a href="{name}">{name}</a>' for name in copied)
    body = (
        f'<p><a href="../../index.html">← report</a></p><h2>{html.escape(row.learner)} on '
        f"{html.escape(column_title(row.protocol))}, seed {row.seed}</h2>"
        f"<p>run {row.run_id} · suite {html.escape(row.suite)} · convention {html.escape(row.convention)} · "
        f"{row.steps} steps · files: {links}</p>"
        '<figure><img src="evaluations.svg" alt="evaluations"></figure>'
        '<figure><img src="losses.svg" alt="losses"></figure>'
        f"<h3>Configuration</h3>{_mapping_table(config)}<h3>Environment</h3>{_mapping_table(environment)}"
    )
    atomic.write_text(folder / "index.html", _page(f"run {row.run_id}", body))


def _mapping_table(value: Mapping[str, Any], prefix: str = "") -> str:
    rows = []

    def walk(item: Any, path: str) -> None:
        if isinstance(item, Mapping) and item:
            for key in sorted(item):
                walk(item[key], f"{path}.{key}" if path else str(key))
        else:
            rows.append(f"<tr><th>{html.escape(path)}</th><td>{html.escape(json.dumps(item))}</td></tr>")

    walk(value, prefix)
    return f'<table class="mapping">{"".join(rows)}</table>'


# -- the page --------------------------------------------------------------------------------------------------
def _header(suites: Sequence[str], evaluation: Evaluation, runs: int) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    return (
        "<header><h1>fasbench report</h1>"
        f"<p>{runs} finished runs (suites {html.escape(', '.join(suites))}; per protocol and paper vs reproduced: "
        f"{html.escape(evaluation.suite)}) · generated {when} UTC by fasbench "
        f'{__version__} · <a href="#leaderboard">leaderboard</a> · <a href="#paper">paper vs reproduced</a> · '
        '<a href="#protocols">per protocol</a> · <a href="#runs">runs</a></p></header>'
    )


def _asset(name: str) -> str:
    return resources.files("fasbench.results").joinpath("assets", name).read_text(encoding="utf-8")


def _page(title: str, body: str, data: Mapping[str, Any] | None = None) -> str:
    script = ""
    if data is not None:
        encoded = json.dumps(data, sort_keys=True).replace("</", "<\\/")
        script = (
            f'<script type="application/json" id="report-data">{encoded}</script><script>{_asset("report.js")}</script>'
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_asset('report.css')}</style></head>"
        f"<body>{body}{script}</body></html>\n"
    )

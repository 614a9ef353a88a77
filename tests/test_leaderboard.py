"""Leaderboard numbers and every output format, pinned on a small committed set of result rows."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from fasbench.benchmark import load_benchmark
from fasbench.errors import FasbenchError
from fasbench.results.leaderboard import AVERAGE, build_leaderboard
from fasbench.results.render import FORMATS, render
from fasbench.results.store import ResultRow

DATA = Path(__file__).parent / "data"
HIGHER = {"HTER": False, "AUC": True}


def rows():
    return [ResultRow(**row) for row in json.loads((DATA / "leaderboard_rows.json").read_text())]


def board(**kwargs):
    return build_leaderboard(rows(), metrics=["HTER", "AUC"], higher_is_better=HIGHER, **kwargs)


def test_cells_are_mean_and_sample_std_over_seeds():
    table = board()
    cell = table.cells[("rfmeta", "ICM_O", "HTER")]
    assert cell.n == 3
    assert cell.mean == pytest.approx(np.mean([0.2, 0.22, 0.18]))
    assert cell.std == pytest.approx(np.std([0.2, 0.22, 0.18], ddof=1))
    assert table.cells[("binary_cnn", "ICM_O", "AUC")].n == 2


def test_average_is_per_seed_over_protocols_then_over_seeds():
    table = board()
    rfmeta = table.cells[("rfmeta", AVERAGE, "HTER")]
    per_seed = [np.mean([0.1, 0.2]), np.mean([0.12, 0.22]), np.mean([0.11, 0.18])]
    assert rfmeta.mean == pytest.approx(np.mean(per_seed)) and rfmeta.std == pytest.approx(np.std(per_seed, ddof=1))
    # binary_cnn has seed 2 on OCI_M only: its average uses the seeds present on every protocol
    assert table.cells[("binary_cnn", AVERAGE, "HTER")].n == 2


def test_best_per_column_respects_direction():
    table = board()
    assert table.cells[("rfmeta", "OCI_M", "HTER")].best and not table.cells[("binary_cnn", "OCI_M", "HTER")].best
    assert table.cells[("rfmeta", "OCI_M", "AUC")].best and not table.cells[("binary_cnn", "OCI_M", "AUC")].best


def test_order_and_filters():
    assert board(order=["rfmeta"]).learners == ["rfmeta", "binary_cnn"]
    assert board().learners == ["binary_cnn", "rfmeta"]
    assert board(learners=["rfmeta"]).learners == ["rfmeta"]
    assert board(protocols=["ICM_O"]).columns == ["ICM_O"]


@pytest.mark.parametrize(
    "attribute, value, option",
    [
        ("suite", "real", "--suite"),
        ("threshold_policy", "source_val", "--threshold-policy"),
        ("selection", "oracle", "--selection"),
        ("level", "frame", "--level"),
    ],
)
def test_refuses_to_mix(attribute, value, option):
    mixed = rows()
    mixed[0] = replace(mixed[0], **{attribute: value})
    with pytest.raises(FasbenchError, match=f"must not mix them: choose one with {option}"):
        build_leaderboard(mixed, metrics=["HTER"])


def test_errors_for_missing_and_non_finite_metrics():
    with pytest.raises(FasbenchError, match="no finished runs"):
        build_leaderboard([], metrics=["HTER"])
    with pytest.raises(FasbenchError, match="has no metric 'ACER'"):
        build_leaderboard(rows(), metrics=["ACER"])
    bad = rows()
    bad[0] = replace(bad[0], metrics={"HTER": float("nan"), "AUC": 0.5})
    with pytest.raises(FasbenchError, match="non-finite HTER"):
        build_leaderboard(bad, metrics=["HTER"])


def test_oracle_selection_is_marked_in_the_caption():
    oracle = [replace(r, selection="oracle", oracle=True) for r in rows()]
    caption = build_leaderboard(oracle, metrics=["HTER"]).caption
    assert "selection oracle (oracle: chosen on the target domain; not a domain-generalization result)" in caption
    assert "configuration: preset none, 100 training steps" in caption


def rendered(fmt):
    summary = load_benchmark().convention("fasbench").summary
    output = render(board(order=["rfmeta"], convention_summary=summary), fmt)
    if fmt == "rich":
        console = Console(width=200, record=True, file=open("/dev/null", "w"), color_system=None)
        console.print(output)
        return console.export_text()
    return output


@pytest.mark.parametrize("fmt", FORMATS)
def test_formats_match_golden_files(fmt, request):
    golden = DATA / "golden" / f"leaderboard.{fmt}.txt"
    text = rendered(fmt)
    if request.config.getoption("--update-golden", default=False):
        golden.write_text(text)
    assert text == golden.read_text()


def test_reported_rows_carry_the_papers_numbers_and_the_gap():
    from fasbench.results.tables import with_reported

    spec = load_benchmark()
    shown = with_reported(board(order=["rfmeta"]), spec)
    reported, gap = shown.reported_rows("rfmeta")
    assert reported[0] == "reported" and reported[1][("ICM_O", "HTER")] == pytest.approx(0.1645)
    cell = shown.cells[("rfmeta", "ICM_O", "HTER")]
    assert gap[1][("ICM_O", "HTER")] == pytest.approx(cell.mean - 0.1645)
    average = (0.1389 + 0.1645) / 2  # the average column averages the shown protocols' reported numbers
    assert reported[1][(AVERAGE, "HTER")] == pytest.approx(average)
    markdown = render(shown, "markdown")
    assert "| _reported_ | 16.45 | 91.16 | 13.89 | 93.98 |" in markdown
    assert "Shao, Lan, Yuen, AAAI 2020, Table 1" in markdown
    # these rows are selection `last`: the caption says the papers chose on the target, and how to compare
    assert "rfmeta: convention fasbench, selection oracle, threshold test_eer" in shown.caption
    assert shown.reported_sources == {
        "binary_cnn": "Binary CNN row of Shao, Lan, Yuen, AAAI 2020, Table 1",
        "rfmeta": "Shao, Lan, Yuen, AAAI 2020, Table 1",
    }
    oracle = [replace(row, selection="oracle") for row in rows()]
    like = with_reported(build_leaderboard(oracle, metrics=["HTER"], higher_is_better=HIGHER), spec)
    assert "evaluated otherwise" not in like.caption and "Reported rows" in like.caption


def test_reported_rows_add_fasbench_under_the_papers_evaluation_where_the_table_uses_another():
    from fasbench.results.tables import with_reported

    spec = load_benchmark()
    oracle_rows = [
        replace(row, selection="oracle", metrics={k: v / 2 for k, v in row.metrics.items()}) for row in rows()
    ]
    paper = build_leaderboard(oracle_rows, metrics=["HTER", "AUC"], higher_is_better=HIGHER)
    unknown = [replace(row, learner="not_in_registry") for row in rows() if row.learner == "rfmeta"]
    table = build_leaderboard(rows() + unknown, metrics=["HTER", "AUC"], higher_is_better=HIGHER)
    shown = with_reported(table, spec, {"rfmeta": paper})
    kinds = [kind for kind, _ in shown.reported_rows("rfmeta")]
    assert kinds == ["reported", "gap", "fasbench, paper's evaluation", "gap, paper's evaluation"]
    values = dict(shown.reported_rows("rfmeta"))
    mean = paper.cells[("rfmeta", "ICM_O", "HTER")].mean
    assert values["fasbench, paper's evaluation"][("ICM_O", "HTER")] == mean
    assert values["gap, paper's evaluation"][("ICM_O", "HTER")] == pytest.approx(mean - 0.1645)
    assert [kind for kind, _ in shown.reported_rows("binary_cnn")] == ["reported", "gap"]  # no paper board given
    assert shown.reported_rows("not_in_registry") == []  # a learner without reported numbers: no extra rows
    assert "none recorded for binary_cnn: run them with --mode paper" in shown.caption
    csv = render(shown, "csv")
    assert '"rfmeta (fasbench, paper\'s evaluation)",ICM_O,HTER,' in csv

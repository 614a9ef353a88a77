"""``fasbench report`` end to end on a small store of tiny synthetic runs, opened in headless Chromium; the
papers' numbers in ``fasbench leaderboard --with-reported``; APCER per attack type against the scores."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny import tiny_benchmark

from fasbench.cli import main
from fasbench.evaluation import read_scores
from fasbench.plugins import installed_plugins
from fasbench.results.report import apcer_by_type, attack_family, read_losses
from fasbench.results.store import ResultsStore

pytestmark = pytest.mark.usefixtures("one_thread")
LEARNERS = ("binary_cnn", "rfmeta")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two learners x two seeds on ICM_O (tiny), one run attacked, and the report of it all."""
    folder = tmp_path_factory.mktemp("report")
    setup = {"benchmark": str(tiny_benchmark(folder)), "cache": str(folder / "cache"), "out": folder / "runs"}
    for learner in LEARNERS:
        assert cli(setup, "run", learner, "--protocol", "ICM_O", "--suite", "synthetic", "--preset", "tiny",
                   "--seeds", "0", "1", "--out", str(setup["out"]), "--cache-dir", setup["cache"], "--no-progress",
                   "--cfg-options", "hparams.batch_per_class=2") == 0  # fmt: skip
    attacked = sorted(setup["out"].rglob("done"))[0].parent
    assert cli(setup, "attack", str(attacked), "--cache-dir", setup["cache"], "--eps", "0", "2", "--steps", "2") == 0
    setup["site"] = folder / "site"
    assert (
        cli(
            setup,
            "report",
            "--out",
            str(setup["out"]),
            "--output",
            str(setup["site"]),
            "--significance",
            "200",
            "--preset",
            "tiny",
        )
        == 0
    )
    setup["attacked"] = attacked
    return setup


def cli(setup, *argv: str) -> int:
    return main(["--benchmark", setup["benchmark"], *argv])


def page_data(site: Path) -> dict:
    text = (site / "index.html").read_text()
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def test_report_holds_every_evaluation_with_the_leaderboards_numbers(store, capsys):
    site = store["site"]
    data = page_data(site)
    selections = [e.name for e in installed_plugins().entries("selections") if not e.is_family]
    combos = {(b["selection"], b["threshold_policy"], b["level"]) for b in data["boards"]}
    assert combos == {(s, p, lv) for s in selections for p in ("test_eer", "source_val", "fixed:0.5")
                      for lv in ("video", "frame")}  # fmt: skip
    default = data["default"]
    board = next(b for b in data["boards"] if all(b[k] == v for k, v in default.items()))
    assert board["tested"] and "paired bootstrap" in board["caption"]
    capsys.readouterr()
    assert cli(store, "leaderboard", "--out", str(store["out"]), "--preset", "tiny", "--format", "json") == 0
    table = json.loads(capsys.readouterr().out)
    assert len(table["cells"]) == 2 * 2 * 1  # learners x metrics x one protocol (no average column)
    for cell in table["cells"]:
        row = next(r for r in board["rows"] if r["learner"] == cell["learner"])
        assert row["cells"][f"{cell['protocol']}|{cell['metric']}"]["mean"] == pytest.approx(cell["mean"], abs=1e-12)
    # reported numbers and gaps under each learner that has them (both do)
    rfmeta = next(r for r in board["rows"] if r["learner"] == "rfmeta")
    assert rfmeta["reported"]["ICM_O|HTER"] == "16.45" and rfmeta["gap"]["ICM_O|HTER"].startswith(("+", "-"))

    for name in ("roc_ICM_O.svg", "attack_ICM_O.svg", *(f"hist_ICM_O_{lrn}.svg" for lrn in LEARNERS)):
        assert (site / "plots" / name).read_text().lstrip().startswith("<?xml"), name
    runs = {p.parent.name for p in store["out"].rglob("done")}
    assert {p.name for p in (site / "runs").iterdir()} == {r.split("-")[-1] for r in runs}
    run_page = site / "runs" / store["attacked"].name.split("-")[-1]
    for name in ("index.html", "evaluations.svg", "losses.svg", "config.json", "evals.jsonl", "attack.json"):
        assert (run_page / name).is_file(), name
    html = (site / "index.html").read_text()
    assert "Paper vs reproduced" in html and "Shao, Lan, Yuen, AAAI 2020, Table 1" in html
    assert "outside the ISO/IEC 30107 presentation-attack threat model" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # nothing remote


def test_leaderboard_with_reported_and_significance_in_every_format(store, capsys):
    capsys.readouterr()
    base = ["leaderboard", "--out", str(store["out"]), "--preset", "tiny", "--with-reported", "--significance", "100"]
    assert cli(store, *base, "--format", "json") == 0
    table = json.loads(capsys.readouterr().out)
    (reported,) = [r for r in table["reported"] if (r["learner"], r["metric"]) == ("rfmeta", "HTER")]
    (cell,) = [c for c in table["cells"] if (c["learner"], c["metric"]) == ("rfmeta", "HTER")]
    assert reported["value"] == pytest.approx(0.1645) and reported["gap"] == pytest.approx(cell["mean"] - 0.1645)
    assert reported["paper_evaluation_mean"] is not None  # the tiny runs under oracle + test_eer, RF-Meta's paper's
    assert "not comparable with the papers'" in table["caption"] and "tied" in cell
    assert cli(store, *base, "--format", "csv") == 0
    csv = capsys.readouterr().out
    assert csv.splitlines()[0].endswith(",best,tied") and "rfmeta (reported),ICM_O,HTER,0.164500" in csv
    assert cli(store, *base, "--format", "latex") == 0
    assert r"\quad\textit{reported}" in capsys.readouterr().out


def test_apcer_per_attack_type_is_the_share_of_each_types_spoofs_accepted(store):
    rows = ResultsStore(store["out"] / "results.sqlite").rows(
        selection="last", threshold_policy="test_eer", level="video", learner="rfmeta"
    )
    found = apcer_by_type(rows)
    expected: dict[str, list[float]] = {}
    for row in rows:
        table, _ = read_scores(Path(row.run_dir) / "evals" / f"{row.selected_steps[0]:08d}-target.h5")
        videos = table.by_video()
        spoof = videos.label == 0
        for name in set(videos.attack_type[spoof]) | {attack_family(t) for t in videos.attack_type[spoof]}:
            members = spoof & np.asarray([t == name or attack_family(t) == name for t in videos.attack_type])
            expected.setdefault(name, []).append(float(np.mean(videos.score[members] >= row.threshold)))
    assert found.keys() == expected.keys() and {"print", "replay"} <= set(found)
    for name, values in expected.items():
        assert found[name] == pytest.approx(values, abs=1e-12)


def test_losses_are_read_from_the_training_log(store):
    losses = read_losses(store["attacked"] / "log.txt")
    steps, values = losses["loss"]
    assert steps == [1, 2, 3, 4] and all(np.isfinite(values))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install Debian's `chromium` package (.ci/run does)")
def test_the_report_works_in_a_real_browser(store):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' installs playwright")
    problems: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.goto((store["site"] / "index.html").as_uri(), wait_until="load")
            assert page.locator("#board tr.learner").count() == len(LEARNERS)
            images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
            assert images and all(width > 0 for _, width in images), images
            shown = page.inner_text("#board")
            page.select_option("#pick-selection", "last_k_mean")
            assert "model selection last_k_mean" in page.inner_text("#caption")
            assert page.inner_text("#board") != shown  # the mean of the last evaluations: other numbers
            page.select_option("#pick-selection", "last")
            assert page.inner_text("#board") == shown
            column = "#board tr.learner td:nth-child(2)"
            page.click("th.sortable[data-key='ICM_O|HTER']")  # lower is better: ascending first
            means = page.eval_on_selector_all(column, "els => els.map(e => parseFloat(e.textContent))")
            assert means == sorted(means) and len(set(means)) == len(means)
            page.click("th.sortable[data-key='ICM_O|HTER']")  # again: descending
            again = page.eval_on_selector_all(column, "els => els.map(e => parseFloat(e.textContent))")
            assert again == sorted(means, reverse=True)
            page.uncheck("#show-reported")
            assert page.locator("#board tr.reported").count() == 0
            run_link = page.locator("#runs a").first.get_attribute("href")
            page.goto((store["site"] / run_link).as_uri(), wait_until="load")
            assert "Configuration" in page.inner_text("body")
        finally:
            browser.close()
    assert problems == []


def test_the_report_replaces_only_an_earlier_report(store, tmp_path, capsys):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    base = ["report", "--out", str(store["out"]), "--preset", "tiny", "--significance", "0", "--output"]
    assert cli(store, *base, str(precious)) == 2
    assert "holds other files" in capsys.readouterr().err and (precious / "thesis.tex").exists()
    assert cli(store, *base, str(precious / "thesis.tex")) == 2
    assert "is a file" in capsys.readouterr().err
    site = tmp_path / "site"
    assert cli(store, *base, str(site)) == 0 and cli(store, *base, str(site)) == 0  # an earlier report: replaced
    assert "†" not in page_data(site)["boards"][0]["caption"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "site"]  # no staging folder left behind
    assert cli(store, "report", "--out", str(tmp_path / "nothing"), "--output", str(tmp_path / "x")) == 2
    assert "no results store" in capsys.readouterr().err

"""The adversarial stress test: the differentiable HSV, PGD on tiny models (hand-written step, monotone in eps,
exact at eps 0), and ``fasbench attack`` end to end on a tiny synthetic run."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import tiny_benchmark

from fasbench.attack import perturbed_input, pgd, rgb_to_hsv_float
from fasbench.cli import main
from fasbench.data.transforms import rgb_to_hsv, to_network_input
from fasbench.interfaces import InputSpec

pytestmark = pytest.mark.usefixtures("one_thread")


def test_float_hsv_is_the_cached_hsv_without_its_rounding():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 24, 24), generator=generator, dtype=torch.uint8)
    images[0, :, :4, :4] = 7  # grey pixels: hue and saturation 0
    table = rgb_to_hsv(images).to(torch.float64)
    exact = rgb_to_hsv_float(images.to(torch.float64) / 255) * 255
    difference = (exact - table).abs()
    hue_wraps = torch.minimum(difference[:, 0], 255 - difference[:, 0])  # hue is circular
    assert hue_wraps.max() <= 1 + 1e-9 and difference[:, 1:].max() <= 1 + 1e-9
    assert difference[:, 2].max() == 0  # V = max exactly


def tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 1),
    )  # fmt: skip


def test_fgsm_is_the_hand_written_signed_gradient_step_on_a_linear_score():
    torch.manual_seed(1)
    weights = torch.randn(1, 3, 8, 8)
    clean = 0.2 + 0.6 * torch.rand(5, 3, 8, 8)  # far from the pixel range's ends: no clipping at eps 4/255

    def live_score(images):
        return torch.sigmoid((images * weights).flatten(1).sum(1))

    eps = 4 / 255
    moved = pgd(live_score, clean, eps=eps, steps=1, direction="spoof_to_live", step_size=None)
    assert torch.equal(moved, clean + eps * weights.sign().expand_as(clean))
    lowered = pgd(live_score, clean, eps=eps, steps=1, direction="live_to_spoof", step_size=None)
    assert torch.equal(lowered, clean - eps * weights.sign().expand_as(clean))


def test_pgd_raises_spoof_scores_monotonically_with_eps_and_is_exact_at_zero():
    net = tiny_net().eval()

    def live_score(images):
        return torch.sigmoid(net(images[:, :3])).squeeze(1)

    clean = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = live_score(clean)
    means = []
    for eps in (0, 1, 2, 4, 8):
        moved = pgd(live_score, clean, eps=eps / 255, steps=10, direction="spoof_to_live", step_size=eps / 4 / 255)
        assert (moved - clean).abs().max() <= eps / 255 + 1e-7 and moved.min() >= 0 and moved.max() <= 1
        with torch.no_grad():
            after = live_score(moved)
        if eps == 0:
            assert torch.equal(moved, clean) and torch.equal(after, before)
        means.append(float(after.mean()))
    assert all(later > earlier for earlier, later in zip(means, means[1:], strict=False)), means
    moved = pgd(live_score, clean, eps=8 / 255, steps=10, direction="live_to_spoof", step_size=2 / 255)
    with torch.no_grad():
        assert float(live_score(moved).mean()) < float(before.mean())


def test_rgb_hsv_input_is_exact_at_zero_and_hsv_planes_carry_gradient():
    cached = torch.randint(0, 256, (3, 20, 20, 3), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    clean = to_network_input(cached, InputSpec(size=16, color="rgb_hsv"))
    delta = torch.zeros(3, 3, 16, 16, requires_grad=True)
    moved = perturbed_input(clean, delta)
    assert torch.equal(moved.detach(), clean)
    (gradient,) = torch.autograd.grad(moved[:, 3:].sum(), delta)  # a network reading only H, S, V
    assert gradient.abs().sum() > 0


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attack")
    benchmark, cache, out = str(tiny_benchmark(folder)), str(folder / "cache"), folder / "runs"
    argv = [
        "--benchmark", benchmark, "run", "binary_cnn", "--protocol", "ICM_O", "--suite", "synthetic", "--preset",
        "tiny", "--seeds", "0", "--out", str(out), "--cache-dir", cache, "--no-progress", "--cfg-options",
        "hparams.batch_per_class=2",
    ]  # fmt: skip
    assert main(argv) == 0
    (done,) = out.rglob("done")
    return {"benchmark": benchmark, "cache": cache, "run": done.parent}


def attack(setup, *extra: str) -> int:
    return main(["--benchmark", setup["benchmark"], "attack", str(setup["run"]), "--cache-dir", setup["cache"], *extra])


def test_attack_command_records_beside_the_run_at_the_clean_threshold(finished_run, capsys):
    assert attack(finished_run, "--eps", "0", "2", "8", "--steps", "3", "--direction", "spoof_to_live") == 0
    document = json.loads((finished_run["run"] / "attack.json").read_text())
    assert "outside the ISO/IEC 30107" in document["kind"] and document["clean_max_abs_difference"] <= 1e-6
    record = json.loads((finished_run["run"] / "record.json").read_text())
    (last,) = [
        e for e in record["evaluations"] if (e["selection"], e["policy"], e["level"]) == ("last", "test_eer", "video")
    ]
    clean = document["clean"]["test_eer/video"]
    assert clean["threshold"] == last["threshold"]
    for name, value in last["metrics"].items():  # the reproduced clean numbers are the run's own
        assert clean["metrics"][name] == pytest.approx(value, abs=1e-12)
    by_eps = {r["eps"]: r for r in document["results"]}
    assert sorted(by_eps) == [0.0, 2.0, 8.0] and {r["attack"] for r in document["results"]} == {"PGD"}
    assert by_eps[0.0]["metrics"] == clean["metrics"]
    assert by_eps[0.0]["mean_score_after"] == by_eps[0.0]["mean_score_before"]
    before, after = by_eps[0.0]["mean_score_after"], by_eps[2.0]["mean_score_after"]
    assert before <= after <= by_eps[8.0]["mean_score_after"]  # the envelope over budgets: monotone in eps
    assert [r["envelope_of"] for r in document["results"]] == [[0.0], [0.0, 2.0], [0.0, 2.0, 8.0]]
    hters = [by_eps[e]["metrics"]["HTER"] for e in (0.0, 2.0, 8.0)]
    assert hters == sorted(hters)
    # each budget alone is attacked from the clean frames: the same numbers whatever else was asked
    alone = by_eps[8.0]["metrics_this_budget_alone"]
    for result in document["results"]:  # only the spoofs moved: the live frames keep their clean scores
        assert result["metrics"]["BPCER"] == clean["metrics"]["BPCER"]

    # deterministic: the same attack again gives the same numbers
    assert attack(finished_run, "--eps", "0", "2", "8", "--steps", "3", "--direction", "spoof_to_live") == 0
    again = json.loads((finished_run["run"] / "attack.json").read_text())
    assert again["results"] == document["results"]

    # FGSM is added beside the PGD results, not over them
    assert attack(finished_run, "--eps", "2", "--steps", "1", "--direction", "live_to_spoof") == 0
    document = json.loads((finished_run["run"] / "attack.json").read_text())
    kinds = sorted((r["attack"], r["direction"], r["eps"]) for r in document["results"])
    assert kinds == [("FGSM", "live_to_spoof", 2.0)] + [("PGD", "spoof_to_live", e) for e in (0.0, 2.0, 8.0)]
    # a new attack of the same group replaces the group whole (its envelope depends on the budgets asked for)
    assert attack(finished_run, "--eps", "8", "--steps", "3", "--direction", "spoof_to_live") == 0
    document = json.loads((finished_run["run"] / "attack.json").read_text())
    kinds = sorted((r["attack"], r["direction"], r["eps"]) for r in document["results"])
    assert kinds == [("FGSM", "live_to_spoof", 2.0), ("PGD", "spoof_to_live", 8.0)]
    (only,) = [r for r in document["results"] if r["attack"] == "PGD"]
    assert only["metrics_this_budget_alone"] == alone and only["envelope_of"] == [8.0]


def test_attack_refuses_bad_inputs_before_any_work(finished_run, tmp_path, capsys):
    assert attack(finished_run, "--eps", "-1") == 2
    assert "--eps must be >= 0" in capsys.readouterr().err
    not_a_run = dict(finished_run, run=tmp_path)
    assert attack(not_a_run) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert attack(finished_run, "--threshold-policy", "fixed:0.3") == 2
    assert "recorded no evaluation under threshold policy 'fixed:0.3'" in capsys.readouterr().err


def test_every_frame_ends_at_its_best_iterate_never_worse_than_clean():
    def live_score(images):  # a score whose signed-gradient steps overshoot: it oscillates in the pixels
        return torch.sigmoid(4 * torch.sin(60 * images.flatten(1).mean(1)))

    clean = torch.rand(32, 3, 4, 4, generator=torch.Generator().manual_seed(4))
    before = live_score(clean)
    for direction, sign in (("spoof_to_live", 1), ("live_to_spoof", -1)):
        moved = pgd(live_score, clean, eps=8 / 255, steps=10, direction=direction, step_size=2 / 255)
        after = live_score(moved)
        assert bool((sign * (after - before) >= 0).all())
        assert bool((sign * (after - before) > 0).any())
        assert (moved - clean).abs().max() <= 8 / 255 + 1e-7

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecNormalize

from sb3_pdm import PDMCallback, PDMConfig, PDMPolicy
from sb3_pdm.benchmark.__main__ import main, parse_args
from sb3_pdm.benchmark.report import (
    COMPARISONS,
    README_END,
    README_START,
    TARGETS,
    TARGETS_END,
    TARGETS_START,
    Target,
    comparison_table,
    iqm_with_ci,
    load_runs,
    markdown,
    summarize,
    targets,
)
from sb3_pdm.benchmark.report import main as report_main
from sb3_pdm.benchmark.runner import METHODS, RunSpec, hyperparameters, make_model, train
from sb3_pdm.layers import pdm_layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--budget", "128", "--n-evals", "2", "--eval-episodes", "1", "--workers", "2"]
#: A PDM entry as the project's hyperparams/ files hold them (the tuned methods read it from --hyperparams).
PDM_ENTRY = """
CartPole-v1:
  n_envs: 4
  n_timesteps: !!float 1e5
  policy: 'sb3_pdm.PDMPolicy'
  callback: sb3_pdm.PDMCallback
  n_steps: 16
  learning_rate: lin_0.002
  policy_kwargs: "dict(net_arch=[32, 32], activation_fn=nn.ReLU, pdm_kwargs=dict(local_lr=1e-3),
                       actor_pdm_kwargs=dict(local_lr=1e-4))"
"""


@pytest.fixture
def pdm_hyperparams(tmp_path):
    folder = tmp_path / "hyperparams"
    folder.mkdir()
    (folder / "a2c.yml").write_text(PDM_ENTRY)
    return str(folder)


def test_benchmark_writes_results_and_resumes(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{README_START}\nold\n{README_END}\nend\n")
    args = ["--envs", "CartPole-v1", "--algos", "ppo", "a2c", "--out", str(tmp_path), "--readme", str(readme), *TINY]
    main(args)
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert {(r["algo"], r["method"]) for r in rows} == {(a, m) for a in ("ppo", "a2c") for m in ("backprop", "pdm", "frozen")}
    for row in rows:
        keys = ("env", "n_seeds", "budget", "mean", "std", "iqm", "iqm_ci_low", "iqm_ci_high", "eval_mean", "sec_per_1k_steps")
        assert all(key in row for key in keys)
    record = json.loads((tmp_path / "runs/CartPole-v1/ppo/pdm/seed_0/evaluations.json").read_text())
    assert len(record["curve"]) >= 2 and record["timesteps"] >= 128
    # What per-seed curves depend on besides the spec: the machine and the package versions.
    assert record["environment"]["PyTorch"] == th.__version__ and record["environment"]["CPU"]
    assert {"Stable-Baselines3", "Gymnasium", "Numpy", "sb3-contrib"} <= set(record["environment"])
    assert (tmp_path / "curves_CartPole-v1_ppo.png").exists() and (tmp_path / "summary.md").exists()
    text = readme.read_text()
    assert "\nold\n" not in text and "| CartPole-v1 PPO 128 | both zoo" in text and text.endswith("end\n")
    # One seed: no spread and no interval claimed anywhere.
    summary = (tmp_path / "summary.md").read_text()
    assert "± 0.0" not in summary and "std <= backprop's: met" not in summary and "± n/a" in summary

    mtime = os.path.getmtime(tmp_path / "runs/CartPole-v1/ppo/pdm/seed_0/evaluations.json")
    main(args)
    assert "6 already done, 0 to go" in capsys.readouterr().out
    assert os.path.getmtime(tmp_path / "runs/CartPole-v1/ppo/pdm/seed_0/evaluations.json") == mtime


def test_first_seed_sets_the_seeds_run(tmp_path):
    # Tuning reruns use seeds apart from the evaluation seeds 0..15.
    main(
        [
            "--envs",
            "CartPole-v1",
            "--methods",
            "backprop",
            "--seeds",
            "2",
            "--first-seed",
            "1000",
            "--out",
            str(tmp_path),
            *TINY,
        ]
    )
    assert sorted(os.listdir(tmp_path / "runs/CartPole-v1/ppo/backprop")) == ["seed_1000", "seed_1001"]
    record = json.loads((tmp_path / "runs/CartPole-v1/ppo/backprop/seed_1001/evaluations.json").read_text())
    assert record["spec"]["seed"] == 1001


def test_methods_table_holds_the_current_methods_only():
    assert set(METHODS) == {
        "backprop",
        "pdm",
        "frozen",
        "pdm-tuned",
        "frozen-tuned",
        "backprop-sb3defaults",
        "pdm-sb3defaults",
    }
    with pytest.raises(SystemExit):
        parse_args(["--methods", "pdm-hnorm"])


def test_backprop_pdm_and_frozen_use_the_zoos_values():
    models = {m: make_model(RunSpec("CartPole-v1", "ppo", m, 0, budget=128)) for m in ("backprop", "pdm", "frozen")}
    for name, (model, eval_env, callbacks, budget) in models.items():
        # RL-Zoo's CartPole PPO entry: 8 envs of 32 steps, 20 epochs, lin_0.001 and lin_0.2 as SB3 schedules to 0.
        assert (model.n_envs, model.n_steps, model.n_epochs, model.batch_size, model.gamma) == (8, 32, 20, 256, 0.98)
        assert isinstance(model.lr_schedule.value_schedule, LinearSchedule)
        assert model.lr_schedule(1.0) == 1e-3 and model.lr_schedule(0.5) == 5e-4 and model.lr_schedule(-0.1) == 0.0
        assert model.clip_range(1.0) == 0.2 and model.clip_range(-0.1) == 0.0
        assert budget == 128 and eval_env.num_envs == 1
        assert isinstance(model.policy, PDMPolicy) == (name != "backprop")
        assert [type(c) for c in callbacks] == ([] if name == "backprop" else [PDMCallback])
    assert type(models["backprop"][0].policy) is ActorCriticPolicy
    assert models["pdm"][0].policy.pdm_config == PDMConfig()
    frozen = models["frozen"][0].policy
    assert frozen.pdm_config == PDMConfig(local_learning=False)
    assert all(not layer.local_learning for layer in pdm_layers(frozen))


def test_frozen_control_is_built_frozen_and_stays_so_after_save_and_load(tmp_path):
    model, _, callbacks, _ = make_model(RunSpec("CartPole-v1", "ppo", "frozen", 0, budget=128))
    before = [p.detach().clone() for layer in pdm_layers(model.policy) for p in layer.parameters()]
    model.learn(512, callback=callbacks)
    after = [p.detach() for layer in pdm_layers(model.policy) for p in layer.parameters()]
    assert all(th.equal(a, b) for a, b in zip(before, after))
    model.save(tmp_path / "frozen.zip")
    loaded = PPO.load(tmp_path / "frozen.zip", device="cpu")
    assert loaded.policy.pdm_config.local_learning is False
    assert pdm_layers(loaded.policy) and all(not layer.local_learning for layer in pdm_layers(loaded.policy))


def test_tuned_methods_read_the_pdm_entry(pdm_hyperparams):
    for method in ("pdm-tuned", "frozen-tuned"):
        spec = RunSpec("CartPole-v1", "a2c", method, 0, budget=64)
        entry = hyperparameters(spec, pdm_hyperparams)
        model, _, callbacks, _ = make_model(spec, entry)
        policy = model.policy
        frozen = method == "frozen-tuned"
        # The entry's algorithm values (lin_x as a schedule), policy class and callback, and its PDM options.
        assert (model.n_envs, model.n_steps, model.lr_schedule(0.5)) == (4, 16, 1e-3)
        assert type(policy) is PDMPolicy and [type(c) for c in callbacks] == [PDMCallback]
        assert policy.net_arch == [32, 32] and policy.activation_fn is th.nn.ReLU
        assert policy.pdm_config == PDMConfig(local_lr=1e-3, local_learning=not frozen)
        assert policy.actor_pdm_config == PDMConfig(local_lr=1e-4, local_learning=not frozen)
        assert all(layer.local_learning != frozen for layer in pdm_layers(policy))


def test_sb3defaults_methods_keep_only_the_run_settings():
    # RL-Zoo's CartPole PPO entry less its algorithm values: 8 envs, SB3's defaults for the rest.
    for method in ("backprop-sb3defaults", "pdm-sb3defaults"):
        spec = RunSpec("CartPole-v1", "ppo", method, 0, budget=64)
        assert set(hyperparameters(spec)) == {"n_envs", "n_timesteps", "policy"}
        model, _, _, budget = make_model(spec)
        stock = PPO("MlpPolicy", "CartPole-v1")
        assert model.n_envs == 8 and budget == 64
        for key in ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef"):
            assert getattr(model, key) == getattr(stock, key), key
        assert model.lr_schedule(0.5) == stock.lr_schedule(0.5) and model.clip_range(0.5) == stock.clip_range(0.5)
        assert isinstance(model.policy, PDMPolicy) == (method == "pdm-sb3defaults")
        if method == "pdm-sb3defaults":
            assert model.policy.pdm_config == PDMConfig()


def test_zoo_normalization_and_evaluation(tmp_path):
    # Acrobot's zoo entries normalise observations and rewards; the evaluation env reads the training statistics.
    model, eval_env, _, _ = make_model(RunSpec("Acrobot-v1", "a2c", "backprop", 0, budget=64))
    assert isinstance(model.get_vec_normalize_env(), VecNormalize) and isinstance(eval_env, VecNormalize)
    assert model.get_vec_normalize_env().gamma == model.gamma and not eval_env.training and not eval_env.norm_reward
    # PPO on CartPole: 256 steps per rollout; 2 evaluations over 1024 steps, at 512 and 1024, by SB3's EvalCallback.
    record = train(RunSpec("CartPole-v1", "ppo", "pdm", 0, budget=1024, n_evals=2, eval_episodes=2))
    assert [row["timesteps"] for row in record["curve"]] == [512, 1024]
    assert record["final"] == record["curve"][-1]["mean"] and 0 < record["train_seconds"]
    # A budget that the last rollout overshoots gets one more evaluation, at the end of training.
    record = train(RunSpec("CartPole-v1", "a2c", "backprop", 0, budget=100, n_evals=1, eval_episodes=1))
    assert [row["timesteps"] for row in record["curve"]] == [104, 120]


def test_one_or_two_seeds_claim_no_spread_and_no_interval():
    def record(method: str, seed: int, final: float) -> dict:
        spec = dict(env="E", algo="ppo", method=method, seed=seed)
        return dict(spec=spec, budget=100, curve=[dict(timesteps=100, mean=final, std=0.0)], final=final, sec_per_1k_steps=1.0)

    one = summarize([record("backprop", 0, 500.0), record("pdm", 0, 500.0)])
    assert all(row["std"] is None and row["iqm_ci_low"] is None and row["iqm_ci_high"] is None for row in one)
    table = markdown(one)
    assert "± 0.0" not in table and "500.0 ± n/a | 500.0 [n/a]" in table
    text = targets(one)
    assert "std <= backprop's: met" not in text and "met (backprop's std is 0" not in text
    assert "| n/a: no spread below 2 seeds |" in text and "Std target: n/a" in text
    two = summarize([record(m, s, 100.0 * (s + 1)) for m in ("backprop", "pdm", "frozen") for s in range(2)])
    assert all(row["std"] == 50.0 and row["iqm_ci_low"] is None for row in two)
    text = targets(two)
    assert "| n/a: no interval below 3 seeds |" in text and "Std target: met on 1 of 1" in text
    three = summarize([record("pdm", s, 100.0 * s) for s in range(3)])
    assert three[0]["iqm_ci_low"] <= three[0]["iqm"] <= three[0]["iqm_ci_high"]


def test_summary_of_curves():
    def record(seed: int, evals: list[float]) -> dict:
        curve = [dict(timesteps=100 * (k + 1), mean=v, std=0.0) for k, v in enumerate(evals)]
        spec = dict(env="E", algo="ppo", method="pdm", seed=seed)
        return dict(spec=spec, budget=300, curve=curve, final=evals[-1], sec_per_1k_steps=1.0)

    (row,) = summarize([record(0, [0.0, 30.0, 30.0]), record(1, [10.0, 50.0, 0.0])])
    assert row["n_seeds"] == 2 and row["mean"] == 15.0 and row["std"] == 15.0
    # Each run's evaluations averaged (20 and 20), then over runs; drops from best: 0 and 50.
    assert row["eval_mean"] == 20.0 and row["drop_from_best"] == 25.0
    table = markdown([row])
    header, _, line = table.splitlines()
    assert header.count("|") == line.count("|") and "| 20.0 | 25.0 |" in line


def test_targets_table():
    def row(env: str, method: str, iqm: float, ci: tuple[float, float], std: float, sec: float) -> dict:
        return dict(env=env, algo="ppo", method=method, n_seeds=8, budget=1000, iqm=iqm, iqm_ci_low=ci[0],
                    iqm_ci_high=ci[1], std=std, sec_per_1k_steps=sec)  # fmt: skip

    rows = [
        # Every target met: ratio 0.95, CI clear of the control's, std 2 <= 4, time 1.2 x.
        row("Good", "backprop", 100.0, (90.0, 110.0), 4.0, 1.0),
        row("Good", "pdm", 95.0, (80.0, 99.0), 2.0, 1.2),
        row("Good", "frozen", 20.0, (10.0, 30.0), 9.0, 1.0),
        # Every target missed: backprop's std is 0, the IQM under the control's, time just over 1.5 x.
        row("Bad", "backprop", 500.0, (500.0, 500.0), 0.0, 1.0),
        row("Bad", "pdm", 100.0, (50.0, 150.0), 30.0, 1.502),
        row("Bad", "frozen", 200.0, (20.0, 500.0), 150.0, 1.0),
        # Negative returns, no known floor: no ratio; the control's CI overlapping.
        row("Neg", "backprop", -70.0, (-75.0, -67.0), 4.0, 1.0),
        row("Neg", "pdm", -85.0, (-150.0, -80.0), 40.0, 1.6),
        row("Neg", "frozen", -90.0, (-120.0, -85.0), 40.0, 1.0),
        # Negative returns with a known floor (-500): a ratio on the shifted scale (415 / 430) where a target asks it.
        row("Acrobot-v1", "backprop", -70.0, (-75.0, -67.0), 4.0, 1.0),
        row("Acrobot-v1", "pdm", -85.0, (-90.0, -80.0), 4.0, 1.0),
        # No control.
        row("Free", "backprop", 10.0, (9.0, 11.0), 1.0, 1.0),
        row("Free", "pdm", 10.0, (9.0, 11.0), 1.0, 1.0),
        # No PDM row: no line.
        row("Alone", "backprop", 1.0, (1.0, 1.0), 0.0, 1.0),
    ]
    lines = {line.split(" | ")[0][2:]: line for line in targets(rows).splitlines() if line.startswith("| ")}
    assert set(lines) == {
        "setting",
        "Good ppo 1,000",
        "Bad ppo 1,000",
        "Neg ppo 1,000",
        "Acrobot-v1 ppo 1,000",
        "Free ppo 1,000",
    }
    assert "| met: 0.95 x (95.0 against 100.0) | met: 80.0 > 30.0 | met: 0.50 x | met: 1.20 x |" in lines["Good ppo 1,000"]
    assert (
        "missed: 0.20 x (100.0 against 500.0) | missed: IQM below the control's (100.0 against 200.0)"
        in lines["Bad ppo 1,000"]
    )
    assert "missed: backprop's std is 0, pdm's 30.0 | missed: 1.502 x |" in lines["Bad ppo 1,000"]
    assert "| no ratio: (-85.0 against -70.0) | missed: [-150.0, -80.0] overlaps [-120.0, -85.0]" in lines["Neg ppo 1,000"]
    assert "| no ratio: (-85.0 against -70.0) | no control run |" in lines["Acrobot-v1 ppo 1,000"]
    assert "| no control run | met: 1.000 x |" in lines["Free ppo 1,000"]
    assert "Std target: met on 3 of 5 settings" in targets(rows)
    # Where the control is not a target, its separation is shown as such.
    outside = {line.split(" | ")[0][2:]: line for line in targets(rows, control_envs=("Good",)).splitlines()}
    assert "| met: 80.0 > 30.0 |" in outside["Good ppo 1,000"]
    assert "| not a target: not above: IQM below the control's (100.0 against 200.0) |" in outside["Bad ppo 1,000"]
    assert "| not a target: no control run |" in outside["Free ppo 1,000"]
    # The same-defaults comparison has no control column and its own reference.
    same = Target("pdm-sb3defaults", "backprop-sb3defaults", None, 0.9)
    renamed = [dict(r, method=r["method"] + "-sb3defaults") for r in rows if r["method"] != "frozen"]
    header, _, good = targets(renamed, same).splitlines()[:3]
    assert "control" not in header and header.count("|") == 6
    assert good.startswith("| Acrobot-v1 ppo 1,000 | 8 | met: 0.97 x")
    assert {t.method for t in TARGETS} == {"pdm", "pdm-tuned", "pdm-sb3defaults"} and all(t.method in METHODS for t in TARGETS)


def test_comparison_table_puts_each_comparison_side_by_side():
    def row(method, iqm, seeds=8, std=10.0, sec=1.0):
        return dict(
            env="LunarLander-v3", algo="a2c", method=method, n_seeds=seeds, budget=200_000, iqm=iqm,
            iqm_ci_low=iqm - 5, iqm_ci_high=iqm + 5, std=std, sec_per_1k_steps=sec,
        )  # fmt: skip

    rows = [
        row("backprop", 100.0, 16),
        row("pdm-tuned", 0.0, 16, std=5.0, sec=0.5),
        row("frozen-tuned", -50.0),
        row("backprop-sb3defaults", 50.0),
        row("pdm-sb3defaults", -100.0),
    ]
    lines = comparison_table(rows).splitlines()
    assert len(lines) == 4  # header, rule, two comparisons (no zoo `pdm` row was run)
    tuned, defaults = lines[2:]
    # Ratios from LunarLander's floor (-300): 300 / 400 and 200 / 350.
    assert tuned == (
        f"| LunarLander-v3 A2C 200,000 | {COMPARISONS[0][0]} | 100.0 [95.0, 105.0] (16) | 0.0 [-5.0, 5.0] (16) "
        "| -50.0 [-55.0, -45.0] (8) | 0.75 | 10.0, 5.0 | 1.00, 0.50 |"
    )
    assert defaults.startswith(f"| LunarLander-v3 A2C 200,000 | {COMPARISONS[1][0]} | 50.0 [45.0, 55.0] (8) |")
    assert "| - | 0.57 |" in defaults


def test_committed_runs_load_and_summarise():
    """The committed runs hold the current methods only, and their committed summaries are what the report makes."""
    for folder in ("benchmarks/results-2core", "benchmarks/results"):
        records = load_runs(os.path.join(ROOT, folder, "runs"))
        assert records and {record["spec"]["method"] for record in records} <= set(METHODS)
        rows = summarize(records)
        assert all(row["n_seeds"] < 3 or row["iqm_ci_low"] <= row["iqm"] <= row["iqm_ci_high"] for row in rows)
        markdown(rows)
        targets(rows)
        with open(os.path.join(ROOT, folder, "summary.json")) as file:
            assert json.load(file) == rows


def _write_runs(folder, finals: dict[str, list[float]], sec: dict[str, float]) -> None:
    """Finished CartPole PPO runs in ``folder/runs``: a run per final return (seeds 0, 1, ...), a time per step per method."""
    for method, method_finals in finals.items():
        for seed, final in enumerate(method_finals):
            spec = dict(env="CartPole-v1", algo="ppo", method=method, seed=seed)
            record = dict(
                spec=spec,
                budget=100,
                curve=[dict(timesteps=100, mean=final, std=0.0)],
                final=final,
                sec_per_1k_steps=sec[method],
            )
            run = folder / "runs/CartPole-v1/ppo" / method / f"seed_{seed}"
            run.mkdir(parents=True)
            (run / "evaluations.json").write_text(json.dumps(record))


def test_report_command_rebuilds_the_summary_and_readme_from_the_runs(tmp_path, capsys):
    _write_runs(tmp_path, {"backprop": [500.0, 500.0, 480.0], "pdm": [400.0, 300.0, 200.0]}, {"backprop": 1.0, "pdm": 1.0})
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{README_START}\nold\n{README_END}\nb\n")
    results = tmp_path / "results.md"
    results.write_text(f"a\n{TARGETS_START}\nold\n{TARGETS_END}\nb\n")
    report_main(["--out", str(tmp_path), "--readme", str(readme), "--targets-doc", str(results)])
    assert (
        "\nold\n" not in results.read_text()
        and f"**Targets**: {TARGETS[0].title} (generated from `{tmp_path}`)" in results.read_text()
    )
    assert "2 rows" in capsys.readouterr().out
    assert [row["method"] for row in json.loads((tmp_path / "summary.json").read_text())] == ["backprop", "pdm"]
    text = readme.read_text()
    # The side-by-side table: one line per setting and comparison, no evaluation-curve columns.
    assert (
        "\nold\n" not in text
        and "| CartPole-v1 PPO 100 | both zoo" in text
        and "(3) | 300.0 [" in text
        and text.endswith("b\n")
    )
    assert "mean of evals" not in text and "mean of evals" in (tmp_path / "summary.md").read_text()
    # The README gets the results table alone; the targets and plots are in summary.md.
    assert "**Targets**" not in text and "curves_CartPole-v1_ppo.png" not in text
    assert "**Targets**" in (tmp_path / "summary.md").read_text()


def test_report_takes_times_from_a_timing_folder(tmp_path):
    results, timing = tmp_path / "results", tmp_path / "timing"
    _write_runs(results, {"backprop": [500.0, 480.0], "pdm": [400.0, 300.0]}, {"backprop": 1.0, "pdm": 1.0})
    _write_runs(timing, {"backprop": [10.0], "pdm": [0.0]}, {"backprop": 0.5, "pdm": 1.0})
    readme, doc = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text(f"{README_START}\n{README_END}\n")
    doc.write_text(f"{TARGETS_START}\n{TARGETS_END}\n")
    report_main(["--out", str(results), "--readme", str(readme), "--targets-doc", str(doc), "--timing", str(timing)])
    # The tables take the timing folder's times (and nothing else from it); the summary keeps each run's own.
    assert "| 0.50, 1.00 |" in readme.read_text() and "(2) | 350.0 [n/a] (2) |" in readme.read_text()
    assert f"times from `{timing}`" in doc.read_text() and "| missed: 2.00 x |" in doc.read_text()
    assert {row["sec_per_1k_steps"] for row in json.loads((results / "summary.json").read_text())} == {1.0}
    # A method the timing folder lacks gets no time, rather than one from another session.
    _write_runs(tmp_path / "timing-bp", {"backprop": [10.0]}, {"backprop": 0.5})
    report_main(["--out", str(results), "--targets-doc", str(doc), "--timing", str(tmp_path / "timing-bp")])
    assert "| n/a: not timed |" in doc.read_text()
    with pytest.raises(ValueError, match="timing: no runs"):
        report_main(["--out", str(results), "--timing", str(tmp_path / "empty")])


def test_iqm_and_bad_arguments(tmp_path):
    iqm, low, high = iqm_with_ci(np.array([0.0, 10.0, 10.0, 10.0, 10.0, 100.0, 10.0, 10.0]))
    assert iqm == 10.0 and low <= iqm <= high
    assert summarize([]) == []
    with pytest.raises(SystemExit):
        parse_args(["--seeds", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--first-seed", "-1"])
    with pytest.raises(SystemExit):
        parse_args(["--methods", "sgd"])
    with pytest.raises(SystemExit):
        parse_args(["--address", "auto"])  # a Ray address without the Ray backend
    with pytest.raises(ValueError, match="no ppo hyperparameters"):
        make_model(RunSpec("NoSuchEnv-v0", "ppo", "pdm", 0))
    with pytest.raises(FileNotFoundError):
        hyperparameters(RunSpec("CartPole-v1", "ppo", "pdm-tuned", 0), str(tmp_path))


def test_failed_runs_are_reported_and_the_others_written(tmp_path, monkeypatch, capsys):
    # A run that raises in its worker: the others are written, the command fails naming it, a rerun redoes it only.
    args = ["--envs", "CartPole-v1", "--algos", "a2c", "--methods", "backprop", "pdm-tuned", "--out", str(tmp_path), *TINY]
    broken = tmp_path / "hyperparams"
    broken.mkdir()
    (broken / "a2c.yml").write_text(PDM_ENTRY.replace("nn.ReLU", "nn.NoSuchActivation"))
    with pytest.raises(SystemExit, match="1 of 2 runs failed"):
        main([*args, "--hyperparams", str(broken)])
    assert "CartPole-v1/a2c/pdm-tuned/seed_0 failed" in capsys.readouterr().out
    assert (tmp_path / "runs/CartPole-v1/a2c/backprop/seed_0/evaluations.json").exists()
    (broken / "a2c.yml").write_text(PDM_ENTRY)
    main([*args, "--hyperparams", str(broken)])
    assert "2 runs, 1 already done, 1 to go" in capsys.readouterr().out
    assert (tmp_path / "runs/CartPole-v1/a2c/pdm-tuned/seed_0/evaluations.json").exists()


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (an orphan's exit is not always reaped at once)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_benchmark_process_is_killed(tmp_path):
    # The benchmark's pool set-up, with a task that would outlive the test: killing the parent must end the worker.
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
            import os, time
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context
            from sb3_pdm.benchmark.runner import exit_with_parent

            if __name__ == "__main__":
                kwargs = dict(mp_context=get_context("spawn"), initializer=exit_with_parent, initargs=(os.getpid(), 0.05))
                with ProcessPoolExecutor(1, **kwargs) as pool:
                    print(pool.submit(os.getpid).result(), flush=True)
                    pool.submit(time.sleep, 300)
                    time.sleep(300)
            """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        assert _running(worker)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 30
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker), "the pool worker outlived the killed benchmark process"
    finally:
        parent.kill()
        if _running(worker):
            os.kill(worker, signal.SIGKILL)


def test_a2c_methods_build(pdm_hyperparams):
    # Every method builds for A2C too (the tuned ones from the PDM entry).
    for method in METHODS:
        spec = RunSpec("CartPole-v1", "a2c", method, 0, budget=64)
        model, _, _, _ = make_model(spec, hyperparameters(spec, pdm_hyperparams))
        assert isinstance(model, A2C)

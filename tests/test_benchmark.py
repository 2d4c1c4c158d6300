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

from sb3_pdm import InputNormalizedHead, NormalizedValueHead, PDMConfig, ScaledInputHead
from sb3_pdm.benchmark.__main__ import main, parse_args
from sb3_pdm.benchmark.report import (
    MAX_PLOTTED_METHODS,
    README_END,
    README_START,
    iqm_with_ci,
    markdown,
    plotted_methods,
    summarize,
    targets,
)
from sb3_pdm.benchmark.runner import METHODS, RunSpec, make_model, run
from sb3_pdm.layers import pdm_layers

TINY = ["--budget", "128", "--n-evals", "2", "--eval-episodes", "1", "--workers", "2"]


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
    assert "old" not in text and "| CartPole-v1 | ppo | pdm |" in text and text.endswith("end\n")

    mtime = os.path.getmtime(tmp_path / "runs/CartPole-v1/ppo/pdm/seed_0/evaluations.json")
    main(args)
    assert "6 already done, 0 to go" in capsys.readouterr().out
    assert os.path.getmtime(tmp_path / "runs/CartPole-v1/ppo/pdm/seed_0/evaluations.json") == mtime


def test_crowded_plots_keep_the_reference_methods():
    few = ["pdm-x", "backprop", "pdm"]
    assert plotted_methods(few) == sorted(few)
    crowded = ["frozen", "pdm", "backprop", "frozen-hnorm"] + [f"pdm-variant-{k}" for k in range(MAX_PLOTTED_METHODS)]
    assert plotted_methods(crowded) == ["backprop", "pdm", "frozen", "frozen-hnorm"]


def _trunk_params(model, trunk):
    return [p.detach().clone() for layer in pdm_layers(getattr(model.policy.mlp_extractor, trunk)) for p in layer.parameters()]


@pytest.mark.parametrize("method, frozen_trunks", [("frozen", 2), ("pdm-hnorm-frozen-actor", 1)])
def test_frozen_control_does_not_learn_locally(method, frozen_trunks):
    model, _, callbacks, budget = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=128))
    assert budget == 128 and callbacks
    before = {trunk: _trunk_params(model, trunk) for trunk in ("policy_net", "value_net")}
    model.learn(256, callback=callbacks)
    fixed = {
        trunk: all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(params, _trunk_params(model, trunk)))
        for trunk, params in before.items()
    }
    # The full control freezes both trunks; "frozen-actor" methods the actor's only, and the critic's learns.
    assert fixed == {"policy_net": True, "value_net": frozen_trunks == 2}


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
        row("Good", "frozen-hnorm", 90.0, (70.0, 100.0), 9.0, 1.0),
        # Every target missed: backprop's std is 0, the IQM under the control's, time just over 1.5 x.
        row("Bad", "backprop", 500.0, (500.0, 500.0), 0.0, 1.0),
        row("Bad", "pdm", 100.0, (50.0, 150.0), 30.0, 1.502),
        row("Bad", "frozen", 200.0, (20.0, 500.0), 150.0, 1.0),
        row("Bad", "frozen-hnorm", 30.0, (20.0, 40.0), 5.0, 1.0),
        # Negative returns, the control's CI overlapping.
        row("Neg", "backprop", -70.0, (-75.0, -67.0), 4.0, 1.0),
        row("Neg", "pdm", -85.0, (-150.0, -80.0), 40.0, 1.6),
        row("Neg", "frozen", -90.0, (-120.0, -85.0), 40.0, 1.0),
        # No control.
        row("Free", "backprop", 10.0, (9.0, 11.0), 1.0, 1.0),
        row("Free", "pdm", 10.0, (9.0, 11.0), 1.0, 1.0),
        # No PDM row: no line.
        row("Alone", "backprop", 1.0, (1.0, 1.0), 0.0, 1.0),
    ]
    lines = {line.split(" | ")[0][2:]: line for line in targets(rows).splitlines() if line.startswith("| ")}
    assert set(lines) == {"setting", "Good ppo 1,000", "Bad ppo 1,000", "Neg ppo 1,000", "Free ppo 1,000"}
    assert "met: 0.95 x | met: 80.0 > 30.0 | met: 0.50 x | met: 1.20 x |" in lines["Good ppo 1,000"]
    # The stronger control, outside the targets: overlapping here, below PDM's interval on "Bad", absent elsewhere.
    assert "frozen-hnorm control's |" in lines["setting"]
    assert lines["Good ppo 1,000"].endswith("| not above: [80.0, 99.0] overlaps [70.0, 100.0] |")
    assert lines["Bad ppo 1,000"].endswith("| above: 50.0 > 40.0 |")
    assert lines["Neg ppo 1,000"].endswith("| no control run |")
    assert targets(rows, stronger_control=None).splitlines()[0].count("|") == 7
    assert "missed: 0.20 x | missed: IQM below the control's (100.0 against 200.0)" in lines["Bad ppo 1,000"]
    assert "missed: backprop's std is 0, PDM's 30.0 | missed: 1.502 x |" in lines["Bad ppo 1,000"]
    assert (
        "no ratio (negative returns): -85.0 against -70.0 | missed: [-150.0, -80.0] overlaps [-120.0, -85.0]"
        in lines["Neg ppo 1,000"]
    )
    assert "| no control run | met: 1.000 x |" in lines["Free ppo 1,000"]
    assert "Std target: met on 2 of 4 settings" in targets(rows)
    # Where the control is not a target, its separation is shown as such.
    outside = {line.split(" | ")[0][2:]: line for line in targets(rows, control_envs=("Good",)).splitlines()}
    assert "| met: 80.0 > 30.0 |" in outside["Good ppo 1,000"]
    assert "| not a target: not above: IQM below the control's (100.0 against 200.0) |" in outside["Bad ppo 1,000"]
    assert "| not a target: no control run |" in outside["Free ppo 1,000"]


def test_iqm_and_bad_arguments():
    iqm, low, high = iqm_with_ci(np.array([0.0, 10.0, 10.0, 10.0, 10.0, 100.0, 10.0, 10.0]))
    assert iqm == 10.0 and low <= iqm <= high
    assert summarize([]) == []
    with pytest.raises(SystemExit):
        parse_args(["--seeds", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--methods", "sgd"])
    with pytest.raises(ValueError, match="no ppo hyperparameters"):
        make_model(RunSpec("NoSuchEnv-v0", "ppo", "pdm", 0))


@pytest.mark.parametrize("method", ["pdm-linear-actor", "frozen-linear-actor"])
def test_linear_actor_methods_have_no_actor_trunk(method):
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=128))
    extractor = model.policy.mlp_extractor
    assert len(extractor.policy_net) == 0 and len(pdm_layers(extractor.value_net)) == 2
    # The action head reads the observation itself.
    assert model.policy.action_net.in_features == model.observation_space.shape[0]
    assert all(layer.local_learning == (method == "pdm-linear-actor") for layer in pdm_layers(model.policy))


@pytest.mark.parametrize("method, epochs", [("pdm-ep1", 1), ("pdm", 5), ("pdm-ep10", 10), ("pdm-every-epoch", None)])
def test_local_epoch_methods_step_in_the_first_epochs_only(method, epochs):
    model, _, callbacks, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=256))
    assert model.policy.pdm_config.local_epochs == epochs and model.n_epochs > (epochs or 0)
    model.learn(model.n_steps * model.n_envs, callback=callbacks)
    n_minibatches = -(-model.n_steps * model.n_envs // model.batch_size)
    assert all(layer._n_updates == (epochs or model.n_epochs) * n_minibatches for layer in pdm_layers(model.policy))


#: Methods measured since local_epochs=5 became the default (or pinning their own local_epochs).
LOCAL_EPOCHS_5 = (
    "pdm",
    "pdm-nolimit",
    "frozen",
    "pdm-a3e5",
    "pdm-ep1",
    "pdm-ep10",
    "pdm-v1-ep1",
    "pdm-gate",
    "pdm-hnorm",
    "frozen-hnorm",
    "pdm-hnorm-noguide",
    "pdm-hnorm-linlr",
    "pdm-decor",
    "pdm-decor-0.1",
    "pdm-hnorm-decor",
    "pdm-inorm",
    "pdm-hnorm-inorm",
    "pdm-hnorm-decor-inorm",
    "pdm-init",
    "pdm-hnorm-init",
    "pdm-hnorm-frozen-actor",
    "pdm-hnorm-decor-frozen-actor",
    "pdm-vnorm-decor",
    "frozen-vnorm",
    "pdm-vnorm",
    "pdm-w256-hnorm",
    "frozen-w256-hnorm",
    "pdm-w256-hnorm-a3e5",
    "pdm-w256-hnorm-frozen-actor",
    "pdm-w256-hnorm-follow",
    "pdm-hnorm-follow",
    "pdm-follow",
    "pdm-move0.05",
    "pdm-move0.1",
    "pdm-hnorm-move0.05",
    "pdm-w256-hnorm-move0.05",
    "pdm-centered",
    "pdm-w256-move0.1",
    "pdm-move0.2",
    "pdm-guide3",
    "pdm-gain4",
    "frozen-gain4",
    "pdm-gain4-pi",
    "pdm-gain4-vf",
    "pdm-gain2",
    "pdm-gain2-vf",
    "pdm-vloss-norm",
    "frozen-vloss-norm",
    "pdm-vloss-linear",
    "frozen-vloss-linear",
)


@pytest.mark.parametrize(
    "method",
    [m for m, spec in METHODS.items() if "pdm_kwargs" in spec and m not in LOCAL_EPOCHS_5],
)
def test_methods_measured_before_local_epochs_5_pin_every_epoch(method):
    """Their committed runs stepped in every pass: they keep ``local_epochs=None`` under the new default."""
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=128))
    assert all(layer.config.local_epochs is None for layer in pdm_layers(model.policy))
    assert PDMConfig().local_epochs == 5


@pytest.mark.parametrize("method", [m for m, spec in METHODS.items() if "pdm_kwargs" in spec])
def test_methods_measured_before_the_move_limit_keep_it_off(method):
    """Since the sixteenth round ``max_feature_move=0.1`` is a default; the methods run before it pin ``None``."""
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=128))
    expected = {"pdm": 0.1, "frozen": 0.1, "pdm-move0.05": 0.05, "pdm-hnorm-move0.05": 0.05}
    expected.update(
        {
            "pdm-move0.1": 0.1,
            "pdm-w256-hnorm-move0.05": 0.05,
            "pdm-centered": 0.1,
            "pdm-w256-move0.1": 0.1,
            "pdm-move0.2": 0.2,
            "pdm-guide3": 0.1,
            "pdm-gain4": 0.1,
            "frozen-gain4": 0.1,
            "pdm-gain4-pi": 0.1,
            "pdm-gain4-vf": 0.1,
            "pdm-gain2": 0.1,
            "pdm-gain2-vf": 0.1,
            "pdm-vloss-norm": 0.1,
            "frozen-vloss-norm": 0.1,
            "pdm-vloss-linear": 0.1,
            "frozen-vloss-linear": 0.1,
        }
    )
    assert all(layer.config.max_feature_move == expected.get(method) for layer in pdm_layers(model.policy))
    assert PDMConfig().max_feature_move == 0.1


@pytest.mark.parametrize("method", ["pdm-gain4", "frozen-gain4"])
def test_gain_methods_scale_both_heads_and_freeze_only_the_control(method):
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=128))
    assert all(
        isinstance(head, ScaledInputHead) and head.gain == 4.0 for head in (model.policy.action_net, model.policy.value_net)
    )
    assert all(layer.local_learning == (method == "pdm-gain4") for layer in pdm_layers(model.policy))


@pytest.mark.parametrize(
    "method, gains",
    [
        ("pdm-gain4-pi", (4.0, None)),
        ("pdm-gain4-vf", (None, 4.0)),
        ("pdm-gain2", (2.0, 2.0)),
        ("pdm-gain2-vf", (None, 2.0)),
    ],
)
def test_per_head_gain_methods_scale_the_heads_they_name(method, gains):
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "a2c", method, 0, budget=128))
    for head, gain in zip((model.policy.action_net, model.policy.value_net), gains):
        assert isinstance(head, ScaledInputHead) == (gain is not None)
        assert gain is None or head.gain == gain
    assert all(layer.local_learning for layer in pdm_layers(model.policy))


@pytest.mark.parametrize("algo", ["a2c", "ppo"])
@pytest.mark.parametrize(
    "method, units",
    [
        ("pdm-vloss-norm", "normalized"),
        ("frozen-vloss-norm", "normalized"),
        ("pdm-vloss-linear", "linear"),
        ("frozen-vloss-linear", "linear"),
    ],
)
def test_value_loss_methods_set_their_units_and_freeze_only_the_control(method, units, algo):
    model, _, _, _ = make_model(RunSpec("CartPole-v1", algo, method, 0, budget=128))
    head = model.policy.value_net
    assert isinstance(head, NormalizedValueHead) and head.loss_units == units
    assert not isinstance(model.policy.action_net, ScaledInputHead)
    assert all(layer.local_learning == method.startswith("pdm") for layer in pdm_layers(model.policy))


@pytest.mark.parametrize("method", ["pdm", "frozen", "pdm-v1", "frozen-v1", "pdm-slow", "pdm-linear-actor"])
def test_methods_build_their_defaults_or_pin_v1(method):
    """``pdm``/``frozen`` follow the current defaults; the v1 methods keep saturating features and a plain value head."""
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=256))
    v1 = method not in ("pdm", "frozen")
    assert isinstance(model.policy.value_net, NormalizedValueHead) != v1
    assert all(layer.config.feature_scale == (1.0 if v1 else PDMConfig().feature_scale) for layer in pdm_layers(model.policy))


@pytest.mark.parametrize(
    "method, critic_lr, actor_lr, normalization",
    [
        ("pdm-linlr", "lin_3e-4", "lin_3e-4", "mean"),
        ("pdm-linlr-a3e5", "lin_3e-4", "lin_3e-5", "mean"),
        ("pdm-linlr-c1e3", "lin_1e-3", "lin_3e-4", "mean"),
        ("pdm-lr1e3", 1e-3, 1e-3, "mean"),
        ("pdm-a3e5", 3e-4, 3e-5, "mean"),
        ("pdm-running", 3e-4, 3e-4, "running"),
    ],
)
def test_rate_and_normalization_methods_set_each_trunk(method, critic_lr, actor_lr, normalization):
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=256))
    extractor = model.policy.mlp_extractor
    assert all(layer.config.local_lr == critic_lr for layer in pdm_layers(extractor.value_net))
    assert all(layer.config.local_lr == actor_lr for layer in pdm_layers(extractor.policy_net))
    assert all(layer.config.normalization == normalization for layer in pdm_layers(model.policy))
    assert isinstance(model.policy.value_net, NormalizedValueHead)


def test_gate_method_gates_every_layer_and_records_the_gates(tmp_path):
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", "pdm", 0, budget=256))
    assert not any(layer.config.guidance_gate for layer in pdm_layers(model.policy))
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", "pdm-gate", 0, budget=256))
    assert all(layer.config.guidance_gate for layer in pdm_layers(model.policy))
    # CartPole's zoo PPO collects 256 steps per rollout: 4 rollouts, 2 evaluations, each with every layer's gate.
    record = run(RunSpec("CartPole-v1", "ppo", "pdm-gate", 0, budget=1024, n_evals=2, eval_episodes=1), str(tmp_path))
    assert [sorted(row["gates"]) for row in record["curve"]] == [["pi/0", "pi/1", "vf/0", "vf/1"]] * 2
    gates = [gate for row in record["curve"] for gate in row["gates"].values()]
    assert all(0.0 <= gate <= 1.0 for gate in gates) and min(gates) < 1.0


@pytest.mark.parametrize(
    "method, frozen, options",
    [
        ("pdm-hnorm", False, {}),
        ("frozen-hnorm", True, {}),
        ("pdm-hnorm-noguide", False, {"guidance_coef": 0.0}),
        ("pdm-hnorm-linlr", False, {"local_lr": "lin_3e-4"}),
    ],
)
def test_head_norm_methods_standardize_both_heads(method, frozen, options):
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=256))
    policy = model.policy
    assert isinstance(policy.action_net, InputNormalizedHead) and isinstance(policy.value_net, InputNormalizedHead)
    assert isinstance(policy.value_net.head, NormalizedValueHead)
    layers = pdm_layers(policy)
    # Methods of the ninth round: run before the move limit became a default, they keep it off.
    assert all(layer.config == PDMConfig(max_feature_move=None, **options) for layer in layers)
    assert all(layer.local_learning != frozen for layer in layers)
    plain, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", "pdm", 0, budget=256))
    assert not isinstance(plain.policy.action_net, InputNormalizedHead)


@pytest.mark.parametrize("method, coef, move", [("pdm", 0.0, 0.1), ("pdm-decor", 1.0, None), ("pdm-decor-0.1", 0.1, None)])
def test_decorrelation_methods_set_every_layer(method, coef, move):
    model, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", method, 0, budget=256))
    expected = PDMConfig(decorrelation_coef=coef, max_feature_move=move)
    assert all(layer.config == expected for layer in pdm_layers(model.policy))


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
    script.write_text(
        textwrap.dedent(
            """
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
            """
        )
    )
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

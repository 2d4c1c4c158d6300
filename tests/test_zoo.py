"""RL-Zoo integration (hyperparameter files, ``python -m sb3_pdm.zoo``) and sb3-contrib algorithms with PDM policies."""

import argparse
import contextlib
import glob
import io
import os
import subprocess
import sys
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest
import rl_zoo3
import torch as th
import yaml
from gymnasium import spaces
from rl_zoo3 import hyperparams_opt
from rl_zoo3.exp_manager import ExperimentManager
from rl_zoo3.utils import ALGOS
from sb3_contrib import TRPO, MaskablePPO, RecurrentPPO
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from stable_baselines3 import A2C, PPO

from sb3_pdm import PDMCallback, PDMConfig, PDMPolicy, zoo
from sb3_pdm.benchmark.runner import RunSpec, make_model
from sb3_pdm.contrib import MaskablePDMPolicy, PDMMaskableRolloutBuffer
from sb3_pdm.guidance import GuidanceSignals, attach_signals
from sb3_pdm.heads import NormalizedValueHead
from sb3_pdm.layers import pdm_layers
from sb3_pdm.zoo import pdm_converter, pdm_sampler, register
from tests.conftest import all_equal, none_equal, pdm_params, record_guidance_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = {algo: os.path.join(ROOT, "hyperparams", f"{algo}.yml") for algo in ("ppo", "a2c", "trpo")}
ZOO_CONF = os.path.join(os.path.dirname(rl_zoo3.__file__), "hyperparams")
SB3_CLASSES = {"ppo": PPO, "a2c": A2C, "trpo": TRPO}
#: Values of the zoo's A2C sampler's parameters, for FixedTrial.
_A2C_PARAMS = dict(
    n_steps=32,
    one_minus_gamma=0.01,
    one_minus_gae_lambda=0.05,
    learning_rate=7e-4,
    max_grad_norm=0.5,
    ent_coef=1e-4,
    net_arch="small",
    activation_fn="relu",
)


def _run(command: str, *paths: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``python COMMAND PATHS...`` from the repository root (``COMMAND`` split on spaces); it must succeed."""
    result = subprocess.run(
        [sys.executable, *command.split(), *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


#: Entries of hyperparams/ tuned for PDM (benchmarks/tuning/); the others copy the zoo's values.
PDM_TUNED = {"ppo": {"Acrobot-v1", "CartPole-v1", "LunarLander-v3"}, "a2c": {"CartPole-v1", "LunarLander-v3"}, "trpo": set()}


# --- hyperparameter files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", sorted(CONF))
def test_entries_copy_the_zoo_and_build(algo, tmp_path):
    with open(CONF[algo]) as file:
        entries = yaml.safe_load(file)
    with open(os.path.join(ZOO_CONF, f"{algo}.yml")) as file:
        zoo = yaml.safe_load(file)
    assert {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3", "Pendulum-v1", "BipedalWalker-v3"} <= set(entries)
    for env_id, entry in entries.items():
        assert entry["callback"] == "sb3_pdm.PDMCallback"
        assert entry["policy"] in ("sb3_pdm.PDMPolicy", "sb3_pdm.CnnPDMPolicy")
        # Only the policy, the callback and policy_kwargs differ from the zoo (CarRacing: no opencv resize, documented);
        # entries tuned for PDM change the algorithm's hyperparameters too, but keep the zoo's envs and budget.
        changed = {key for key in set(entry) | set(zoo[env_id]) if entry.get(key) != zoo[env_id].get(key)}
        if env_id in PDM_TUNED[algo]:
            assert not changed & {"n_envs", "n_timesteps", "normalize", "env_wrapper"}
        else:
            assert changed <= {"policy", "callback", "policy_kwargs", *(["env_wrapper"] if env_id == "CarRacing-v3" else [])}
        # Each entry builds through the zoo's own experiment manager (one env each, to stay fast).
        manager = ExperimentManager(
            argparse.Namespace(),
            algo,
            env_id,
            str(tmp_path),
            n_timesteps=64,
            eval_freq=-1,
            hyperparams={"n_envs": 1},
            config=CONF[algo],
            verbose=0,
            seed=0,
        )
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # batch_size larger than the one-env rollout
            model, _ = manager.setup_experiment()
        assert isinstance(model.policy, PDMPolicy)
        assert [type(callback) for callback in manager.callbacks] == [PDMCallback]
        model.env.close()
    assert any(entry["policy"] == "sb3_pdm.CnnPDMPolicy" for entry in entries.values()) == (algo == "ppo")


@pytest.mark.parametrize("env_id", sorted(PDM_TUNED["ppo"]))
def test_tuned_entries_are_the_pdm_tuned_method(env_id):
    with open(CONF["ppo"]) as file:
        text = file.read()
    entry = yaml.safe_load(text)[env_id]
    policy_kwargs = eval(entry["policy_kwargs"], {"dict": dict, "nn": th.nn})
    model, _, _, _ = make_model(RunSpec(env_id, "ppo", "pdm-tuned", 0, budget=64))
    assert PDMConfig(**policy_kwargs["pdm_kwargs"]) == model.policy.pdm_config
    assert policy_kwargs.get("actor_pdm_kwargs") == model.policy.actor_pdm_kwargs
    assert policy_kwargs["value_norm_rate"] == model.policy.value_norm_rate
    # The entry's comment (the block above it) names the method whose benchmark rows it reports.
    assert "`pdm-tuned`" in text.split(f"\n{env_id}:")[0].rsplit("\n\n", 1)[1]


# --- rl_zoo3's own scripts with the files -------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["ppo", "a2c", "trpo"])
def test_zoo_train_then_enjoy(algo, tmp_path):
    # The documented command (relative --conf-file: run from the repository root), with a tiny budget.
    _run(
        f"-m rl_zoo3.train --algo {algo} --env CartPole-v1 --conf-file hyperparams/{algo}.yml -n 2000 --seed 0 "
        "--num-threads 1 -f",
        str(tmp_path),
    )
    (path,) = glob.glob(str(tmp_path / algo / "CartPole-v1_1" / "CartPole-v1.zip"))
    model = SB3_CLASSES[algo].load(path, device="cpu")
    assert type(model.policy) is PDMPolicy
    if algo == "ppo":
        # The CartPole entry's own PDM-tuned options: the normalised value head, a wider move limit, every epoch up to 10.
        assert model.policy.value_norm_rate == 0.01
        assert model.policy.pdm_config.max_feature_move == 0.2 and model.policy.pdm_config.local_epochs == 10
    elif algo == "a2c":
        # A2C's CartPole entry is tuned too: a plain value head, a higher local learning rate.
        assert model.policy.value_norm_rate is None and model.policy.pdm_config.local_lr > 1e-3
    else:
        assert model.policy.pdm_config.local_lr == 3e-4
    if algo == "ppo":
        _run("-m rl_zoo3.enjoy --algo ppo --env CartPole-v1 --no-render -n 200 -f", str(tmp_path))


def test_optimize_samples_pdm_options(tmp_path):
    _run(
        "-m sb3_pdm.zoo train --algo a2c --env CartPole-v1 -optimize --n-trials 2 --n-timesteps 1000 --n-jobs 1 "
        "--sampler random --pruner none --seed 0 --no-optim-plots --eval-episodes 1 -params n_envs:1 --num-threads 1 "
        "--conf-file hyperparams/a2c.yml -f",
        str(tmp_path),
        "--optimization-log-path",
        str(tmp_path / "trials"),
    )
    (report,) = glob.glob(str(tmp_path / "a2c" / "report_CartPole-v1_2-trials-1000-random-none_*.csv"))
    trials = pd.read_csv(report)
    assert len(trials) == 2 and (trials["state"] == "COMPLETE").all()
    for option in ("local_lr", "guidance_coef", "feature_scale"):
        assert trials[f"params_pdm_{option}"].notna().all()
    # The trial's model was built with the sampled options.
    model = A2C.load(str(tmp_path / "trials" / "trial_0" / "best_model.zip"), device="cpu")
    assert model.policy.pdm_config.local_lr == pytest.approx(trials.loc[0, "params_pdm_local_lr"])
    assert model.policy.pdm_config.guidance_coef == pytest.approx(trials.loc[0, "params_pdm_guidance_coef"])


def test_maskable_ppo_through_the_zoo(tmp_path):
    # A registered env with action masks, imported by the zoo through --gym-packages.
    (tmp_path / "masked_envs.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('InvalidActionEnvDiscrete-v0', "
        "entry_point='sb3_contrib.common.envs:InvalidActionEnvDiscrete', kwargs=dict(dim=8, n_invalid_actions=4))\n"
    )
    (tmp_path / "maskable_ppo.yml").write_text(
        "InvalidActionEnvDiscrete-v0:\n"
        "  n_timesteps: 256\n"
        "  policy: 'sb3_pdm.contrib.MaskablePDMPolicy'\n"
        "  callback: sb3_pdm.PDMCallback\n"
        "  n_steps: 64\n"
        "  batch_size: 32\n"
        "  n_epochs: 2\n"
        "  policy_kwargs: 'dict(net_arch=[16])'\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    _run(
        "-m sb3_pdm.zoo train --algo maskable_ppo --env InvalidActionEnvDiscrete-v0 --gym-packages masked_envs "
        "--seed 0 --eval-freq -1 --num-threads 1 -f",
        str(tmp_path),
        "--conf-file",
        str(tmp_path / "maskable_ppo.yml"),
        env=env,
    )
    (path,) = glob.glob(str(tmp_path / "maskable_ppo" / "InvalidActionEnvDiscrete-v0_1" / "*.zip"))
    assert type(MaskablePPO.load(path).policy) is MaskablePDMPolicy


# --- registration and the PDM search, in process ----------------------------------------------------------------


def test_register_is_idempotent_and_adds_maskable_ppo():
    register()
    samplers = dict(hyperparams_opt.HYPERPARAMS_SAMPLER)
    register()
    assert ALGOS["maskable_ppo"] is MaskablePPO
    assert hyperparams_opt.HYPERPARAMS_SAMPLER == samplers
    for algo in ("ppo", "a2c", "trpo", "maskable_ppo"):
        assert getattr(hyperparams_opt.HYPERPARAMS_SAMPLER[algo], "_pdm_wrapped", False)
    assert not getattr(hyperparams_opt.HYPERPARAMS_SAMPLER["sac"], "_pdm_wrapped", False)


@pytest.mark.parametrize("policy, pdm", [(PDMPolicy, True), (MaskablePDMPolicy, True), ("MlpPolicy", False)])
def test_sampler_adds_pdm_options_for_pdm_policies_only(policy, pdm):
    sampler = pdm_sampler(hyperparams_opt.sample_ppo_params)
    assert pdm_sampler(sampler) is sampler
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("policy", str(policy))  # as the zoo's hyperparameters_optimization() stores it
    trial = study.ask()
    hyperparams = sampler(trial, 0, 1, {})
    assert "net_arch" in hyperparams["policy_kwargs"] and "learning_rate" in hyperparams
    assert ("pdm_kwargs" in hyperparams["policy_kwargs"]) == pdm
    assert any(name.startswith("pdm_") for name in trial.params) == pdm
    if pdm:
        assert {name for name in trial.params if name.startswith("pdm_")} == {
            f"pdm_{option}"
            for option in (
                "local_lr",
                "guidance_coef",
                "feature_scale",
                "max_feature_move",
                "local_epochs",
                "value_norm_rate",
            )
        }
        # value_norm_rate is the policy's keyword argument, the others PDMConfig's.
        assert hyperparams["policy_kwargs"]["value_norm_rate"] == trial.params["pdm_value_norm_rate"]
        assert "value_norm_rate" not in hyperparams["policy_kwargs"]["pdm_kwargs"]
        model = PPO(PDMPolicy, "CartPole-v1", n_steps=32, batch_size=32, policy_kwargs=hyperparams["policy_kwargs"])
        assert model.policy.pdm_config.local_lr == trial.params["pdm_local_lr"]
        assert model.policy.pdm_config.local_epochs == trial.params["pdm_local_epochs"]
        assert model.policy.value_norm_rate == trial.params["pdm_value_norm_rate"]
        # A finished trial's parameters convert back (``--trial-id``).
        converted = pdm_converter(hyperparams_opt.convert_onpolicy_params)(dict(trial.params))
        assert converted["policy_kwargs"] == hyperparams["policy_kwargs"]
        assert not any(key.startswith("pdm_") for key in converted)


@pytest.mark.parametrize(
    "algo, options",
    [
        ("ppo", {"max_feature_move", "local_epochs"}),
        ("trpo", {"max_feature_move"}),  # several critic updates per rollout, one pass
        ("a2c", set()),  # one local step per rollout
    ],
)
def test_sampler_samples_the_options_that_act_on_the_algorithm(algo, options):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("policy", str(PDMPolicy))
    trial = study.ask()
    pdm_sampler(getattr(hyperparams_opt, f"sample_{algo}_params"))(trial, 0, 1, {})
    common = {"local_lr", "guidance_coef", "feature_scale", "value_norm_rate"}
    assert {name[len("pdm_") :] for name in trial.params if name.startswith("pdm_")} == common | options


@pytest.mark.parametrize("value_norm_rate", [None, 0.1])
def test_converter_round_trips_none_choices_into_the_policy(value_norm_rate):
    # A PDM search of A2C (one pass per rollout: no local_epochs), with the options' "off" choices.
    params = dict(
        hyperparams_opt.sample_a2c_params(optuna.trial.FixedTrial(_A2C_PARAMS), 0, 1, {}),
    )
    fixed = optuna.trial.FixedTrial(
        dict(_A2C_PARAMS, pdm_local_lr=1e-3, pdm_guidance_coef=0.0, pdm_feature_scale=0.5, pdm_value_norm_rate=value_norm_rate)
    )
    token = zoo._POLICY.set(PDMPolicy)  # what the zoo's objective sets during a trial
    try:
        hyperparams = pdm_sampler(hyperparams_opt.sample_a2c_params)(fixed, 0, 1, {})
    finally:
        zoo._POLICY.reset(token)
    assert hyperparams["policy_kwargs"] == dict(
        params["policy_kwargs"],
        pdm_kwargs=dict(local_lr=1e-3, guidance_coef=0.0, feature_scale=0.5),
        value_norm_rate=value_norm_rate,
    )
    converted = pdm_converter(hyperparams_opt.convert_onpolicy_params)(fixed.params)
    assert converted == hyperparams
    model = A2C(PDMPolicy, "CartPole-v1", n_steps=8, policy_kwargs=converted["policy_kwargs"])
    assert model.policy.pdm_config == PDMConfig(**converted["policy_kwargs"]["pdm_kwargs"])
    assert model.policy.value_norm_rate == value_norm_rate
    assert isinstance(model.policy.value_net, NormalizedValueHead) == (value_norm_rate is not None)


def test_optimize_trials_sample_the_objectives_policy_and_attach_the_files_callback(tmp_path, monkeypatch):
    # A second worker of a study whose first worker has stored its command but not yet the policy (the zoo
    # stores the defaults one user attribute at a time): the trial still samples PDM's options.
    storage = str(tmp_path / "study.log")
    optuna.create_study(storage=zoo.open_storage(storage), study_name="S").set_user_attr("command", "first worker")
    attached = []
    init_callback = PDMCallback._init_callback

    def recording_init(self):
        attached.append(self.model)
        init_callback(self)

    monkeypatch.setattr(PDMCallback, "_init_callback", recording_init)
    # The file's CartPole entry, with PDM options the search does not sample: the sampled policy_kwargs replace them.
    with open(CONF["a2c"]) as file:
        entry = yaml.safe_load(file)["CartPole-v1"]
    entry["policy_kwargs"] = "dict(net_arch=[16], pdm_kwargs=dict(local_steps=3, max_pair_samples=64), share_trunk=True)"
    (tmp_path / "a2c.yml").write_text(yaml.safe_dump({"CartPole-v1": entry}))
    register()
    manager = ExperimentManager(
        argparse.Namespace(),
        "a2c",
        "CartPole-v1",
        str(tmp_path / "logs"),
        n_timesteps=256,
        n_eval_episodes=1,
        hyperparams={"n_envs": 1},
        optimize_hyperparameters=True,
        storage=storage,
        study_name="S",
        n_trials=1,
        sampler="random",
        pruner="none",
        n_evaluations=1,
        no_optim_plots=True,
        config=str(tmp_path / "a2c.yml"),
        verbose=0,
        seed=0,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert manager.setup_experiment() is None
        manager.hyperparameters_optimization()
    (trial,) = optuna.load_study(study_name="S", storage=zoo.open_storage(storage)).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert {"pdm_local_lr", "pdm_value_norm_rate"} <= set(trial.params)
    # A2C: one pass and one local step per rollout, where neither local_epochs nor the trust region acts.
    assert "pdm_local_epochs" not in trial.params and "pdm_max_feature_move" not in trial.params
    # The hyperparameter file's callback (sb3_pdm.PDMCallback) served the trial's model, built with the trial's options.
    (model,) = attached
    policy_kwargs = zoo.pdm_policy_kwargs(trial.params)
    assert model.policy.pdm_config == PDMConfig(**policy_kwargs["pdm_kwargs"])
    assert model.policy.value_norm_rate == policy_kwargs["value_norm_rate"]
    assert model.policy.pdm_config.local_steps == PDMConfig().local_steps and not model.policy.share_trunk
    assert model.policy.pop_missing_guidance() == 0


# --- study reports and studies shared by several workers ----------------------------------------------------------


def test_report_exports_trials_importances_and_summary(tmp_path):
    storage = str(tmp_path / "toy.log")
    study = optuna.create_study(
        storage=zoo.open_storage(storage),
        study_name="toy",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1, 1)
        trial.suggest_float("noise", -1, 1)
        if trial.number == 3:
            raise optuna.TrialPruned()
        return -(x**2)

    study.optimize(objective, n_trials=40)
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        zoo.main(["report", "--storage", storage, "--study-name", "toy", "--out", str(tmp_path / "out")])
    trials = pd.read_csv(tmp_path / "out" / "toy.csv")
    assert len(trials) == 40 and (trials["state"] == "PRUNED").sum() == 1
    assert trials["value"].max() == pytest.approx(study.best_value)
    importances = pd.read_csv(tmp_path / "out" / "toy-importances.csv")
    assert list(importances["param"]) == ["x", "noise"] and importances["importance"].iloc[0] > 0.5
    summary = (tmp_path / "out" / "toy.md").read_text()
    assert summary == stdout.getvalue()
    assert f"| 40 | 39 | 1 | 0 | 0 | {study.best_value:.1f} (#{study.best_trial.number}) |" in summary
    assert "- `x`: " in summary.split("importances")[1]


def test_report_of_a_study_without_complete_trials(tmp_path):
    study = optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path / 'empty.db'}")
    study.ask()  # one running trial
    paths = zoo.report(["--storage", f"sqlite:///{tmp_path / 'empty.db'}", "--study-name", "empty", "--out", str(tmp_path)])
    assert pd.read_csv(paths["importances"]).empty
    assert "| 1 | 0 | 0 | 0 | 1 | - |" in paths["summary"].read_text()


def test_two_workers_share_one_study(tmp_path):
    # The documented way to spread a search: the same command in several processes on one storage (a journal file
    # here; an RDB URL across machines), each with its own --seed so that their random draws differ.
    storage = str(tmp_path / "shared" / "study.log")
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                *(
                    "-m sb3_pdm.zoo train --algo a2c --env CartPole-v1 --conf-file hyperparams/a2c.yml -optimize "
                    "--n-trials 1 -n 256 --n-evaluations 1 --eval-episodes 1 --sampler random --pruner none --n-jobs 1 "
                    f"--seed {1000 + worker} -params n_envs:1 --num-threads 1 --no-optim-plots --study-name S"
                ).split(),
                "--storage",
                storage,
                "-f",
                str(tmp_path / f"worker{worker}"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for worker in range(2)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output[-3000:]
    study = optuna.load_study(study_name="S", storage=zoo.open_storage(storage))
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    first, second = (trial.params for trial in study.trials)
    assert "pdm_local_lr" in first and "pdm_local_lr" in second and first != second


# --- sb3-contrib algorithms in Python ---------------------------------------------------------------------------


def _masked_env() -> InvalidActionEnvDiscrete:
    return InvalidActionEnvDiscrete(dim=8, n_invalid_actions=4)


def test_maskable_ppo_trains_with_pdm_layers_and_head_only_optimizer(tmp_path):
    model = MaskablePPO(
        MaskablePDMPolicy, _masked_env(), n_steps=64, batch_size=32, n_epochs=2, seed=0, policy_kwargs=dict(net_arch=[16, 16])
    )
    before = pdm_params(model.policy)
    model.learn(128, callback=PDMCallback())
    assert none_equal(before, pdm_params(model.policy))
    assert isinstance(model.rollout_buffer, PDMMaskableRolloutBuffer)
    assert model.policy.pop_missing_guidance() == 0
    optimized = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    local = {id(p) for layer in pdm_layers(model.policy) for p in layer.parameters()}
    assert optimized and not optimized & local
    assert optimized | local == {id(p) for p in model.policy.parameters()}
    model.save(tmp_path / "maskable")
    loaded = MaskablePPO.load(tmp_path / "maskable")
    assert type(loaded.policy) is MaskablePDMPolicy
    assert all_equal(pdm_params(model.policy), pdm_params(loaded.policy))
    with pytest.raises(ValueError, match="discrete action space"):
        MaskablePDMPolicy(model.observation_space, spaces.Box(-1, 1, (2,)), lambda _: 3e-4)


def test_maskable_evaluate_actions_guides_local_updates_and_applies_masks():
    model = MaskablePPO(MaskablePDMPolicy, _masked_env(), n_steps=64, seed=0, policy_kwargs=dict(net_arch=[16]))
    policy = model.policy
    generator = th.Generator().manual_seed(0)
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(32)])).float()
    masks = th.rand(32, 8, generator=generator) < 0.5
    masks[:, 0] = True
    actions = th.zeros(32, dtype=th.long)
    attach_signals(obs, GuidanceSignals(th.randn(32), th.randn(32), actions[:, None].float()))
    received = record_guidance_shapes(policy.mlp_extractor)
    policy.set_training_mode(True)
    before = pdm_params(policy)
    values, log_prob, entropy = policy.evaluate_actions(obs, actions, action_masks=masks)
    assert none_equal(before, pdm_params(policy))
    assert received == {"policy_net.0": (32, 8), "value_net.0": (32, 1)}
    assert th.isfinite(log_prob).all() and values.shape == (32, 1)
    # The heads still learn from the RL loss.
    (-(log_prob.mean()) + values.pow(2).mean()).backward()
    assert policy.action_net.weight.grad is not None
    after = pdm_params(policy)
    with th.no_grad():
        probs = policy.get_distribution(obs, action_masks=masks).distribution.probs
    assert all_equal(after, pdm_params(policy))
    assert (probs[~masks] < 1e-6).all()


def test_trpo_local_steps_outside_the_line_search():
    model = TRPO(
        PDMPolicy, "CartPole-v1", n_steps=64, batch_size=32, n_critic_updates=3, seed=0, policy_kwargs=dict(net_arch=[16, 16])
    )
    calls = {"get_distribution": 0}
    original = model.policy.get_distribution

    def counting(*args, **kwargs):
        calls["get_distribution"] += 1
        return original(*args, **kwargs)

    model.policy.get_distribution = counting
    before = pdm_params(model.policy)
    # One rollout and one train(); PDMCallback pops the diagnostics at the rollout's end, so those left are train()'s.
    model.learn(64, callback=PDMCallback())
    assert none_equal(before, pdm_params(model.policy))
    updates = {
        name: int(module.pop_diagnostics()["updates"])
        for name, module in model.policy.mlp_extractor.named_modules()
        if module in pdm_layers(model.policy)
    }
    # Old distribution (no_grad), surrogate/KL pass (one local step), at least one line-search pass (no_grad).
    assert calls["get_distribution"] >= 3
    assert updates == {"policy_net.0": 1, "policy_net.1": 1, "value_net.0": 3 * 2, "value_net.1": 3 * 2}
    assert model.policy.pop_missing_guidance() == 0
    optimized = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert not optimized & {id(p) for layer in pdm_layers(model.policy) for p in layer.parameters()}


def test_recurrent_ppo_raises_a_clear_error():
    with pytest.raises(AttributeError, match="lstm_actor.*RecurrentPPO needs LSTM layers"):
        RecurrentPPO(PDMPolicy, "CartPole-v1")

"""
One benchmark run: train one method on one env with one algorithm and seed, evaluating periodically.

The methods are a small declarative table (:data:`METHODS`): whose hyperparameters a run uses (RL-Zoo's, tuned for
backprop, or this project's PDM entries), with which policy, and whether its PDM layers learn.
"""

import json
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Literal

import numpy as np
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.utils import get_system_info
from stable_baselines3.common.vec_env import VecEnv

from sb3_pdm import CnnPDMPolicy, MultiInputPDMPolicy, PDMCallback, PDMPolicy
from sb3_pdm.benchmark.zoo_hyperparams import (
    PROJECT_HYPERPARAMS,
    ZOO_HYPERPARAMS,
    experiment_manager,
    preprocess,
    read_entry,
    sb3_defaults,
)

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C}

#: The PDM policy that replaces each of SB3's policy names.
PDM_POLICIES: dict[str, type] = {
    "MlpPolicy": PDMPolicy,
    "CnnPolicy": CnnPDMPolicy,
    "MultiInputPolicy": MultiInputPDMPolicy,
}


@dataclass(frozen=True)
class Method:
    """
    How a benchmark method builds its model from a hyperparameter entry.

    :param hyperparams: Whose entry: ``"zoo"``, RL-Zoo's own (tuned for backprop), or ``"pdm"``, the PDM entry of this
        project's ``hyperparams/<algo>.yml``.
    :param pdm: Whether the policy is a PDM policy (trained with :class:`sb3_pdm.PDMCallback`): the entry's own when it
        names one, otherwise the PDM policy of the entry's SB3 policy (:data:`PDM_POLICIES`) with the entry's
        ``policy_kwargs`` and PDM's default options.
    :param local_learning: ``False``: the frozen-random-features control, built with ``local_learning=False`` in its
        ``pdm_kwargs`` (and ``actor_pdm_kwargs``), so that a saved control records what it is.
    :param sb3_defaults: Keep only the entry's ``n_envs``, ``n_timesteps``, ``normalize``, ``policy`` and env settings
        (:data:`~sb3_pdm.benchmark.zoo_hyperparams.RUN_KEYS`): every algorithm hyperparameter, ``policy_kwargs`` and
        PDM option at its default.
    """

    hyperparams: Literal["zoo", "pdm"] = "zoo"
    pdm: bool = True
    local_learning: bool = True
    sb3_defaults: bool = False


#: The benchmark's methods: stock SB3 (backprop), PDM and its frozen control with the zoo's values, with
#: PDM's own tuned values, and both policies with SB3's default algorithm hyperparameters.
METHODS: dict[str, Method] = {
    "backprop": Method(pdm=False),
    "pdm": Method(),
    "frozen": Method(local_learning=False),
    "pdm-tuned": Method(hyperparams="pdm"),
    "frozen-tuned": Method(hyperparams="pdm", local_learning=False),
    "backprop-sb3defaults": Method(pdm=False, sb3_defaults=True),
    "pdm-sb3defaults": Method(sb3_defaults=True),
}


@dataclass
class RunSpec:
    """
    What one run trains and how it is evaluated.

    :param env: Gymnasium env id.
    :param algo: ``ppo`` or ``a2c``.
    :param method: A key of :data:`METHODS`.
    :param seed: Seed of the training envs and the model; the evaluation env's is ``seed + 10_000``.
    :param budget: Training timesteps (``None``: the entry's ``n_timesteps``).
    :param n_evals: Number of evaluations spread over the budget (the last one at the end).
    :param eval_episodes: Deterministic episodes per evaluation.
    """

    env: str
    algo: str
    method: str
    seed: int
    budget: int | None = None
    n_evals: int = 10
    eval_episodes: int = 10

    @property
    def name(self) -> str:
        return os.path.join(self.env, self.algo, self.method, f"seed_{self.seed}")


def hyperparameters(spec: RunSpec, project_hyperparams: str = PROJECT_HYPERPARAMS) -> dict[str, Any]:
    """
    The raw hyperparameter entry of a run's method (before :func:`make_model` preprocesses it).

    :param spec: The run.
    :param project_hyperparams: Folder of this project's ``<algo>.yml`` files (the ``pdm`` entries).
    """
    if spec.method not in METHODS:
        raise ValueError(f"Unknown method '{spec.method}', expected one of {sorted(METHODS)}")
    method = METHODS[spec.method]
    entry = read_entry(spec.algo, spec.env, project_hyperparams if method.hyperparams == "pdm" else ZOO_HYPERPARAMS)
    return sb3_defaults(entry) if method.sb3_defaults else entry


def _frozen(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    return {**(kwargs or {}), "local_learning": False}


def make_model(spec: RunSpec, entry: dict[str, Any] | None = None) -> tuple[BaseAlgorithm, VecEnv, list[BaseCallback], int]:
    """
    The model, its evaluation env, the callbacks it trains with and its budget.

    :param spec: The run.
    :param entry: Its raw hyperparameter entry (default: :func:`hyperparameters`, read from the files on this machine).
    """
    if spec.algo not in ALGOS:
        raise ValueError(f"Unknown algo '{spec.algo}', expected one of {sorted(ALGOS)}")
    if entry is None:
        entry = hyperparameters(spec)
    method = METHODS[spec.method]
    manager = experiment_manager(spec.algo, spec.env, spec.seed, spec.budget)
    kwargs = preprocess(manager, entry)
    callbacks: list[BaseCallback] = kwargs.pop("callback")
    policy = kwargs.pop("policy")
    if method.pdm:
        if isinstance(policy, str):
            policy = PDM_POLICIES[policy]
        policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
        if not method.local_learning:
            policy_kwargs["pdm_kwargs"] = _frozen(policy_kwargs.get("pdm_kwargs"))
            if policy_kwargs.get("actor_pdm_kwargs") is not None:
                policy_kwargs["actor_pdm_kwargs"] = _frozen(policy_kwargs["actor_pdm_kwargs"])
        kwargs["policy_kwargs"] = policy_kwargs
        if not any(isinstance(callback, PDMCallback) for callback in callbacks):
            callbacks.append(PDMCallback())
    env = manager.create_envs(manager.n_envs, no_log=True)
    manager.seed = spec.seed + 10_000
    eval_env = manager.create_envs(1, eval_env=True)
    model = ALGOS[spec.algo](policy, env, seed=spec.seed, device="cpu", **kwargs)
    return model, eval_env, callbacks, manager.n_timesteps


class TimedEvalCallback(EvalCallback):
    """
    SB3's :class:`~stable_baselines3.common.callbacks.EvalCallback` (deterministic episodes, ``VecNormalize``
    statistics synced into the evaluation env) that also measures the time its evaluations take, so that it can be
    kept out of the training time, and evaluates once more at the end of training unless it just did.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_seconds = 0.0

    def _on_step(self) -> bool:
        if not (self.eval_freq > 0 and self.n_calls % self.eval_freq == 0):
            return True
        start = time.perf_counter()
        continue_training = super()._on_step()
        self.eval_seconds += time.perf_counter() - start
        return continue_training

    def _on_training_end(self) -> None:
        if self.n_calls and (not self.evaluations_timesteps or self.evaluations_timesteps[-1] < self.num_timesteps):
            # EvalCallback evaluates when n_calls is a multiple of eval_freq: make this call one.
            eval_freq, self.eval_freq = self.eval_freq, self.n_calls
            self._on_step()
            self.eval_freq = eval_freq


def exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """
    Pool initializer: end this worker as soon as the process that started it is gone.

    A benchmark killed from outside (``kill``, a closed session) would otherwise leave its workers training to the end
    of their runs, computing results nobody waits for and competing for cores with whatever runs next.

    :param parent_pid: PID of the benchmark process (``os.getpid()`` in the parent).
    :param interval: Seconds between two checks.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_environment() -> dict[str, str]:
    """
    What a run's numbers depend on besides its spec and the code: SB3's system info (OS, Python, SB3, PyTorch, NumPy,
    Gymnasium...), the CPU model, the host and the versions of the other packages in the loop. Per-seed curves repeat
    on one machine with one set of packages, not necessarily on another.
    """
    info = {key: str(value) for key, value in get_system_info(print_info=False)[0].items()}
    info["CPU"] = _cpu_model()
    info["host"] = platform.node()
    for package in ("sb3-contrib", "rl-zoo3", "box2d", "sb3-pdm"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def train(spec: RunSpec, entry: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    Train and evaluate one run, writing nothing: the record is returned to whoever writes it (:func:`write_record`),
    so that a worker needs no access to the results folder.

    :param spec: The run.
    :param entry: Its raw hyperparameter entry (default: read from the files on this machine).
    :return: The record of ``evaluations.json``: spec, learning curve (one row per evaluation: timesteps, mean and
        std of the episode returns), final return, training time without the evaluations, and
        :func:`run_environment`.
    """
    th.set_num_threads(1)
    model, eval_env, callbacks, budget = make_model(spec, entry)
    with tempfile.TemporaryDirectory() as log_path:
        # EvalCallback keeps its results (and writes evaluations.npz) only with a log path: a scratch folder.
        evaluation = TimedEvalCallback(
            eval_env,
            n_eval_episodes=spec.eval_episodes,
            # In calls, each of n_envs steps: the first evaluation at the first step past budget / n_evals.
            eval_freq=max(-(-budget // spec.n_evals // model.n_envs), 1),
            log_path=log_path,
            verbose=0,
        )
        start = time.perf_counter()
        model.learn(budget, callback=CallbackList([*callbacks, evaluation]))
        train_seconds = time.perf_counter() - start - evaluation.eval_seconds
    curve = [
        dict(timesteps=int(timesteps), mean=float(np.mean(returns)), std=float(np.std(returns)))
        for timesteps, returns in zip(evaluation.evaluations_timesteps, evaluation.evaluations_results)
    ]
    return dict(
        spec=asdict(spec),
        budget=budget,
        timesteps=model.num_timesteps,
        curve=curve,
        final=curve[-1]["mean"],
        train_seconds=train_seconds,
        sec_per_1k_steps=1000.0 * train_seconds / model.num_timesteps,
        environment=run_environment(),
    )


def write_record(record: dict[str, Any], runs_dir: str) -> str:
    """
    Write a run's record into ``runs_dir/<env>/<algo>/<method>/seed_<seed>/evaluations.json``, atomically: its presence
    marks the run as done (:func:`is_done`).

    :return: The path written.
    """
    folder = os.path.join(runs_dir, RunSpec(**record["spec"]).name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "evaluations.json")
    with open(path + ".tmp", "w") as file:
        json.dump(record, file, indent=1)
    os.replace(path + ".tmp", path)
    return path


def is_done(spec: RunSpec, runs_dir: str) -> bool:
    """Whether the run's ``evaluations.json`` exists under ``runs_dir``."""
    return os.path.exists(os.path.join(runs_dir, spec.name, "evaluations.json"))


def run(spec: RunSpec, out_dir: str) -> dict[str, Any]:
    """
    Train, evaluate and write one run (:func:`train`, then :func:`write_record`).

    :param spec: The run.
    :param out_dir: Root folder of the runs; the run writes into ``out_dir/spec.name``.
    :return: The written record.
    """
    record = train(spec)
    write_record(record, out_dir)
    return record

"""One benchmark run: train one method on one env with one algorithm and seed, evaluating periodically."""

import json
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import get_system_info
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sb3_pdm.benchmark.zoo_hyperparams import algo_kwargs, normalize_kwargs, zoo_entry
from sb3_pdm.callbacks import PDMCallback, layer_names
from sb3_pdm.layers import pdm_layers
from sb3_pdm.policies import PDMPolicy

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C}

#: Local steps in every pass over the rollout (``local_epochs=None``), the default until the sixth round of
#: ``docs/benchmark.md`` (``local_epochs=5`` since). The methods measured before pin it, so that their committed results
#: stay reproducible under their names.
EVERY_EPOCH: dict[str, Any] = {"local_epochs": None}

#: The defaults up to sb3_pdm 0.x ("v1"): ``feature_scale=1`` (saturated tanh features) and a plain value head. The
#: ablations measured on them pin them, so that their committed results stay reproducible under their names.
V1: dict[str, Any] = {"feature_scale": 1.0, **EVERY_EPOCH}

#: Methods by name: stock SB3 (backprop), PDM with its defaults, the frozen-random-features control, and variants.
METHODS: dict[str, dict[str, Any]] = {
    "backprop": {},
    "pdm": {"pdm_kwargs": {}},
    "frozen": {"pdm_kwargs": {}, "frozen": True},
    # Layers step in the first 1 or 10 passes over each rollout only, or in every pass (the defaults: the first 5).
    # PPO's other epochs train the heads on fixed features and cost no local update.
    "pdm-ep1": {"pdm_kwargs": {"local_epochs": 1}},
    "pdm-ep10": {"pdm_kwargs": {"local_epochs": 10}},
    "pdm-every-epoch": {"pdm_kwargs": EVERY_EPOCH},
    # The local rate decays linearly to 0 over training, as the zoo's head rates do: features settle under the heads.
    "pdm-linlr": {"pdm_kwargs": {"local_lr": "lin_3e-4", **EVERY_EPOCH}},
    # Decaying rates, the critic trunk's faster (1e-3) or the actor trunk's slower (3e-5).
    "pdm-linlr-c1e3": {
        "pdm_kwargs": {"local_lr": "lin_1e-3", **EVERY_EPOCH},
        "actor_pdm_kwargs": {"local_lr": "lin_3e-4"},
    },
    "pdm-linlr-a3e5": {
        "pdm_kwargs": {"local_lr": "lin_3e-4", **EVERY_EPOCH},
        "actor_pdm_kwargs": {"local_lr": "lin_3e-5"},
    },
    # The current defaults with the actor trunk ten times slower (a constant 3e-5).
    "pdm-a3e5": {"pdm_kwargs": {}, "actor_pdm_kwargs": {"local_lr": 3e-5}},
    # A faster constant rate for both trunks; wider trunks.
    "pdm-lr1e3": {"pdm_kwargs": {"local_lr": 1e-3, **EVERY_EPOCH}},
    "pdm-w256": {"pdm_kwargs": EVERY_EPOCH, "net_arch": [256, 256]},
    # Each local step's rate scaled by the batch's guidance spread relative to its slow average (guidance_gate):
    # layers step less once the returns and advantages differ less, e.g. under a good policy.
    "pdm-gate": {"pdm_kwargs": {"guidance_gate": True}},
    # Ninth round: heads that read their features standardised by running statistics, and its control.
    "pdm-hnorm": {"pdm_kwargs": {}, "head_input_norm_rate": 0.01},
    "frozen-hnorm": {"pdm_kwargs": {}, "head_input_norm_rate": 0.01, "frozen": True},
    # With standardised head inputs: no guidance (distance preservation alone); local rates decaying to 0.
    "pdm-hnorm-noguide": {"pdm_kwargs": {"guidance_coef": 0.0}, "head_input_norm_rate": 0.01},
    "pdm-hnorm-linlr": {"pdm_kwargs": {"local_lr": "lin_3e-4"}, "head_input_norm_rate": 0.01},
    # A local term that spreads each layer's output variance over its units (decorrelation_coef), plain heads.
    "pdm-decor": {"pdm_kwargs": {"decorrelation_coef": 1.0}},
    "pdm-decor-0.1": {"pdm_kwargs": {"decorrelation_coef": 0.1}},
    # Tenth round: both, decorrelated features read by standardised heads (can PDM's features beat frozen-hnorm's?).
    "pdm-hnorm-decor": {"pdm_kwargs": {"decorrelation_coef": 1.0}, "head_input_norm_rate": 0.01},
    # Eleventh round: input distances measured on the layer's input standardised per feature (input_norm_rate), so the
    # target keeps every observation dimension, not mostly the largest-scale ones; alone, with standardised heads, and
    # with both standardised heads and the decorrelation term.
    "pdm-inorm": {"pdm_kwargs": {"input_norm_rate": 0.01}},
    "pdm-hnorm-inorm": {"pdm_kwargs": {"input_norm_rate": 0.01}, "head_input_norm_rate": 0.01},
    "pdm-hnorm-decor-inorm": {
        "pdm_kwargs": {"input_norm_rate": 0.01, "decorrelation_coef": 1.0},
        "head_input_norm_rate": 0.01,
    },
    # Input distances between the layer's initial (random) features of its input, not the inputs (initial_feature_target):
    # the target keeps the frozen control's non-linear geometry, and guidance is what moves the layers.
    "pdm-init": {"pdm_kwargs": {"initial_feature_target": True}},
    "pdm-hnorm-init": {"pdm_kwargs": {"initial_feature_target": True}, "head_input_norm_rate": 0.01},
    # The actor trunk frozen at initialisation, the critic trunk learning locally: an actor trunk's local steps change
    # the policy outside PPO's clipped update. Against frozen-hnorm, only the critic trunk differs.
    "pdm-hnorm-frozen-actor": {
        "pdm_kwargs": {},
        "head_input_norm_rate": 0.01,
        "actor_pdm_kwargs": {"local_learning": False},
    },
    "pdm-hnorm-decor-frozen-actor": {
        "pdm_kwargs": {"decorrelation_coef": 1.0},
        "head_input_norm_rate": 0.01,
        "actor_pdm_kwargs": {"local_learning": False},
    },
    # Twelfth round: only the value head reads standardised features (its trunk learning with the decorrelation term),
    # the action head reads the actor trunk's as they are; the actor trunk learns too. And its control.
    "pdm-vnorm-decor": {"pdm_kwargs": {"decorrelation_coef": 1.0}, "head_input_norm_rate": {"vf": 0.01}},
    "frozen-vnorm": {"pdm_kwargs": {}, "head_input_norm_rate": {"vf": 0.01}, "frozen": True},
    # The same without the decorrelation term: on A2C's 40-sample updates on 64 units one batch's covariance cannot
    # reach the term's target (docs/method.md; across batches the effect is small, thirteenth round).
    "pdm-vnorm": {"pdm_kwargs": {}, "head_input_norm_rate": {"vf": 0.01}},
    # Thirteenth round: 256-256 trunks (the source's layers map into a higher-dimensional space) read by standardised
    # heads, and its control.
    "pdm-w256-hnorm": {"pdm_kwargs": {}, "net_arch": [256, 256], "head_input_norm_rate": 0.01},
    "frozen-w256-hnorm": {"pdm_kwargs": {}, "net_arch": [256, 256], "head_input_norm_rate": 0.01, "frozen": True},
    # Fourteenth round: the same with the actor trunk's local rate ten times lower, so that its local steps move the
    # policy far less per rollout (benchmarks/prototype/policy_shift.txt).
    "pdm-w256-hnorm-a3e5": {
        "pdm_kwargs": {},
        "actor_pdm_kwargs": {"local_lr": 3e-5},
        "net_arch": [256, 256],
        "head_input_norm_rate": 0.01,
    },
    # And with the action head following the actor trunk's local steps (head_follow="pi"; the prototype
    # benchmarks/prototype/follow.py, as a policy option), at 256 and 64 units.
    "pdm-w256-hnorm-follow": {
        "pdm_kwargs": {},
        "net_arch": [256, 256],
        "head_input_norm_rate": 0.01,
        "head_follow": "pi",
    },
    "pdm-hnorm-follow": {"pdm_kwargs": {}, "head_input_norm_rate": 0.01, "head_follow": "pi"},
    "pdm-follow": {"pdm_kwargs": {}, "head_follow": "pi"},
    # Fifteenth round: each layer skips its local steps on a rollout while its output has moved further (max_feature_move).
    "pdm-move0.05": {"pdm_kwargs": {"max_feature_move": 0.05}},
    "pdm-move0.1": {"pdm_kwargs": {"max_feature_move": 0.1}},
    # And with standardised head inputs, at 64 and 256 units: features held still enough for those heads?
    "pdm-hnorm-move0.05": {"pdm_kwargs": {"max_feature_move": 0.05}, "head_input_norm_rate": 0.01},
    "pdm-w256-hnorm-move0.05": {
        "pdm_kwargs": {"max_feature_move": 0.05},
        "net_arch": [256, 256],
        "head_input_norm_rate": 0.01,
    },
    # And with the actor trunk fixed at its random initialisation, the critic trunk learning.
    "pdm-w256-hnorm-frozen-actor": {
        "pdm_kwargs": {},
        "actor_pdm_kwargs": {"local_learning": False},
        "net_arch": [256, 256],
        "head_input_norm_rate": 0.01,
    },
    # Distances divided by running means over batches (normalization="running"), raw guidance signals.
    "pdm-running": {"pdm_kwargs": {"normalization": "running", **EVERY_EPOCH}},
    "pdm-running-linlr-a3e5": {
        "pdm_kwargs": {"normalization": "running", "local_lr": "lin_3e-4", **EVERY_EPOCH},
        "actor_pdm_kwargs": {"local_lr": "lin_3e-5"},
    },
    # The v1 defaults, their control and their ablations.
    "pdm-v1": {"pdm_kwargs": V1, "value_norm_rate": None},
    "frozen-v1": {"pdm_kwargs": V1, "value_norm_rate": None, "frozen": True},
    "pdm-v1-ep1": {"pdm_kwargs": {**V1, "local_epochs": 1}, "value_norm_rate": None},
    "pdm-noguide": {"pdm_kwargs": {**V1, "guidance_coef": 0.0}, "value_norm_rate": None},
    "pdm-wide": {"pdm_kwargs": V1, "value_norm_rate": None, "net_arch": [256, 256]},
    "pdm-slow": {"pdm_kwargs": {**V1, "local_lr": 3e-5}, "value_norm_rate": None},
    "pdm-skip": {"pdm_kwargs": V1, "value_norm_rate": None, "skip_to_heads": True},
    "frozen-skip": {"pdm_kwargs": V1, "value_norm_rate": None, "skip_to_heads": True, "frozen": True},
    # No actor trunk: a linear action head on the observation, beside a PDM critic trunk (and its frozen control).
    "pdm-linear-actor": {"pdm_kwargs": V1, "value_norm_rate": None, "net_arch": {"pi": [], "vf": [64, 64]}},
    "frozen-linear-actor": {
        "pdm_kwargs": V1,
        "value_norm_rate": None,
        "net_arch": {"pi": [], "vf": [64, 64]},
        "frozen": True,
    },
    # Sixteenth round: the defaults before it, without the move limit (max_feature_move=0.1 since).
    "pdm-nolimit": {"pdm_kwargs": {"max_feature_move": None}},
}

# The methods measured before the sixteenth round ran without the move limit, then off by default: they keep it off, so
# that their committed results stay reproducible under their names. The defaults and their control are what they say.
for _name, _method in METHODS.items():
    if _name not in ("pdm", "frozen") and "pdm_kwargs" in _method:
        _method["pdm_kwargs"] = {"max_feature_move": None, **_method["pdm_kwargs"]}
del _name, _method

# Seventeenth round, with the defaults of the sixteenth (move limit included): the actor trunk's guidance with centred
# action codes (action_code="centered").
METHODS["pdm-centered"] = {"pdm_kwargs": {}, "action_code": "centered"}
# Nineteenth round: the current defaults with 256-256 trunks.
METHODS["pdm-w256-move0.1"] = {"pdm_kwargs": {}, "net_arch": [256, 256]}
# Twentieth round: the current defaults with a looser move limit (where does the limit's gain on LunarLander PPO end?).
METHODS["pdm-move0.2"] = {"pdm_kwargs": {"max_feature_move": 0.2}}
# Twenty-second round: the current defaults with three times the guidance weight (the target 3/4 reward geometry).
METHODS["pdm-guide3"] = {"pdm_kwargs": {"guidance_coef": 3.0}}
# Twenty-third round: the current defaults with both heads reading their features times 4 (head_input_gain), and the
# control with the same heads.
METHODS["pdm-gain4"] = {"pdm_kwargs": {}, "head_input_gain": 4.0}
METHODS["frozen-gain4"] = {"pdm_kwargs": {}, "head_input_gain": 4.0, "frozen": True}
# Twenty-fourth round: which head's gain lifts CartPole PPO and sinks CartPole A2C, and half the gain on both.
METHODS["pdm-gain4-pi"] = {"pdm_kwargs": {}, "head_input_gain": {"pi": 4.0}}
METHODS["pdm-gain4-vf"] = {"pdm_kwargs": {}, "head_input_gain": {"vf": 4.0}}
METHODS["pdm-gain2"] = {"pdm_kwargs": {}, "head_input_gain": 2.0}
# After it: the value head alone at gain 2 (the head whose gain lifted CartPole PPO, at the gain that kept CartPole A2C).
METHODS["pdm-gain2-vf"] = {"pdm_kwargs": {}, "head_input_gain": {"vf": 2.0}}
# Twenty-sixth round: the value head takes the value loss's gradient in the units of its normalised targets (PopArt's),
# so that it no longer dominates the gradient-norm clip that the action head shares.
METHODS["pdm-vloss-norm"] = {"pdm_kwargs": {}, "value_loss_units": "normalized"}
METHODS["frozen-vloss-norm"] = {"pdm_kwargs": {}, "value_loss_units": "normalized", "frozen": True}
# Twenty-seventh round: the value head's gradient as SB3's plain linear value head gets it (divided by the returns' std),
# the size for which the zoo's max_grad_norm was tuned.
METHODS["pdm-vloss-linear"] = {"pdm_kwargs": {}, "value_loss_units": "linear"}
METHODS["frozen-vloss-linear"] = {"pdm_kwargs": {}, "value_loss_units": "linear", "frozen": True}


@dataclass
class RunSpec:
    """
    What one run trains and how it is evaluated.

    :param env: Gymnasium env id.
    :param algo: ``ppo`` or ``a2c``.
    :param method: A key of :data:`METHODS`.
    :param seed: Seed of training and evaluation envs.
    :param budget: Training timesteps (``None``: the zoo's ``n_timesteps``).
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


def make_model(spec: RunSpec) -> tuple[BaseAlgorithm, VecEnv, list[BaseCallback], int]:
    """The model, its evaluation env, the callbacks it trains with, and its budget, from the zoo's hyperparameters."""
    if spec.algo not in ALGOS:
        raise ValueError(f"Unknown algo '{spec.algo}', expected one of {sorted(ALGOS)}")
    if spec.method not in METHODS:
        raise ValueError(f"Unknown method '{spec.method}', expected one of {sorted(METHODS)}")
    entry = zoo_entry(spec.algo, spec.env)
    kwargs = algo_kwargs(entry)
    budget = int(spec.budget or entry["n_timesteps"])
    env = make_vec_env(spec.env, n_envs=entry.get("n_envs", 1), seed=spec.seed)
    eval_env = make_vec_env(spec.env, n_envs=1, seed=spec.seed + 10_000)
    norm = normalize_kwargs(entry)
    if norm is not None:
        env = VecNormalize(env, **norm)
        eval_env = VecNormalize(
            eval_env, training=False, norm_reward=False, **{k: v for k, v in norm.items() if k != "norm_reward"}
        )
    method = METHODS[spec.method]
    callbacks: list[BaseCallback] = []
    policy: Any = "MlpPolicy"
    if "pdm_kwargs" in method:
        policy = PDMPolicy
        policy_kwargs = dict(kwargs.pop("policy_kwargs", {}), pdm_kwargs=method["pdm_kwargs"])
        options = (
            "net_arch",
            "skip_to_heads",
            "share_trunk",
            "value_norm_rate",
            "actor_pdm_kwargs",
            "head_input_norm_rate",
            "head_follow",
            "action_code",
            "head_input_gain",
            "value_loss_units",
        )
        for option in options:
            if option in method:
                policy_kwargs[option] = method[option]
        kwargs["policy_kwargs"] = policy_kwargs
        callbacks.append(PDMCallback())
    model = ALGOS[spec.algo](policy, env, seed=spec.seed, device="cpu", **kwargs)
    if method.get("frozen"):
        for layer in pdm_layers(model.policy):
            layer.local_learning = False
    return model, eval_env, callbacks, budget


class _PeriodicEvaluation(BaseCallback):
    """
    Deterministic evaluation every ``eval_every`` steps; its time is kept out of the training time. With
    ``guidance_gate`` layers, each evaluation row also holds ``gates``: per layer, the rate multiplier of its last
    local step before each rollout, averaged since the previous evaluation.
    """

    def __init__(self, eval_env: VecEnv, eval_every: int, n_episodes: int) -> None:
        super().__init__()
        self.eval_env, self.eval_every, self.n_episodes = eval_env, eval_every, n_episodes
        self.next_eval = eval_every
        self.rows: list[dict[str, Any]] = []
        self.eval_seconds = 0.0
        self._gate_sums: dict[str, float] = {}
        self._gate_count = 0

    def _init_callback(self) -> None:
        modules = dict(self.model.policy.named_modules())
        names = layer_names(self.model.policy)
        self._gated = {names[path]: modules[path] for path in names if modules[path].config.guidance_gate}  # type: ignore[union-attr]

    def _on_rollout_start(self) -> None:
        for name, layer in self._gated.items():
            self._gate_sums[name] = self._gate_sums.get(name, 0.0) + layer.gate
        self._gate_count += bool(self._gated)

    def evaluate(self) -> None:
        start = time.perf_counter()
        if isinstance(self.eval_env, VecNormalize):
            self.eval_env.obs_rms = self.model.get_vec_normalize_env().obs_rms  # type: ignore[union-attr]
        returns, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_episodes, return_episode_rewards=True)
        row: dict[str, Any] = dict(timesteps=self.num_timesteps, mean=float(np.mean(returns)), std=float(np.std(returns)))
        if self._gate_count:
            row["gates"] = {name: total / self._gate_count for name, total in self._gate_sums.items()}
            self._gate_sums, self._gate_count = {}, 0
        self.rows.append(row)
        self.eval_seconds += time.perf_counter() - start

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.eval_every
            self.evaluate()
        return True


def exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """
    Pool initializer: end this worker as soon as the process that started it is gone.

    A benchmark killed from outside (``kill``, a closed session) would otherwise leave its workers training to the end
    of their runs, writing results nobody waits for and competing for cores with whatever runs next.

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
    Gymnasium...), the CPU model and the versions of the other packages in the loop. Per-seed curves repeat on one
    machine with one set of packages, not necessarily on another (``benchmarks/prototype/reproducibility.txt``).
    """
    info = {key: str(value) for key, value in get_system_info(print_info=False)[0].items()}
    info["CPU"] = _cpu_model()
    for package in ("sb3-contrib", "rl-zoo3", "box2d", "sb3-pdm"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def run(spec: RunSpec, out_dir: str) -> dict[str, Any]:
    """
    Train and evaluate one run; write ``evaluations.json`` (curve, final return, timing, the machine and package
    versions of :func:`run_environment`) into its folder.

    :param spec: The run.
    :param out_dir: Root folder of the runs; the run writes into ``out_dir/spec.name``.
    :return: The written record.
    """
    th.set_num_threads(1)
    model, eval_env, callbacks, budget = make_model(spec)
    evaluation = _PeriodicEvaluation(eval_env, max(budget // spec.n_evals, 1), spec.eval_episodes)
    start = time.perf_counter()
    model.learn(budget, callback=CallbackList([*callbacks, evaluation]))
    if not evaluation.rows or evaluation.rows[-1]["timesteps"] < model.num_timesteps:
        evaluation.evaluate()
    train_seconds = time.perf_counter() - start - evaluation.eval_seconds
    record = dict(
        spec=asdict(spec),
        budget=budget,
        timesteps=model.num_timesteps,
        curve=evaluation.rows,
        final=evaluation.rows[-1]["mean"],
        train_seconds=train_seconds,
        sec_per_1k_steps=1000.0 * train_seconds / model.num_timesteps,
        environment=run_environment(),
    )
    folder = os.path.join(out_dir, spec.name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "evaluations.json.tmp"), "w") as file:
        json.dump(record, file, indent=1)
    # Written last and atomically: its presence marks the run as done.
    os.replace(os.path.join(folder, "evaluations.json.tmp"), os.path.join(folder, "evaluations.json"))
    return record

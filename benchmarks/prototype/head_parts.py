"""
What part of the standardised heads helps (twenty-third round): the prototype patched into ``InputNormalizedHead``.

``head_input_norm_rate`` (``pdm-hnorm``, ``frozen-hnorm``) makes each head read ``(h - mean) / std`` per unit, with
running statistics. That does three things at once: it centres each unit (tanh units have a mean of the order of their
std, which a linear head learning by gradient steps must undo through its bias), it multiplies the features by about
four (per-unit std about 0.25 -> 1: with Adam or RMSprop a head's output moves by about ``lr * |h|`` per step), and it
equalises the units' scales (which amplifies a shift of a unit with little variance). Here ``HEAD_PART`` (an
environment variable) keeps one of them:

- ``center``: ``h - mean`` (running mean, rate of the method; std held at 1);
- ``gain``: ``h / GAIN_STD`` with a fixed ``GAIN_STD = 0.25`` (no statistics), the head's weights scaled by
  ``GAIN_STD`` at construction so that its initial outputs are those of the plain head;
- ``scale``: ``h / std`` (running per-unit std; mean held at 0).

Each statistics update keeps the head's outputs unchanged, as ``InputNormalizedHead`` does.

``HEAD_PART=center python benchmarks/prototype/head_parts.py METHOD SEEDS [ENV ALGO]`` trains the benchmark method
(``pdm-hnorm`` or ``frozen-hnorm``, whose heads are the patched class, or ``pdm-hnorm-move0.1``, the current
defaults with both heads wrapped) with zoo settings and budgets and the
benchmark's evaluation, two runs at a time, into ``benchmarks/prototype/results-head-<part>``, and prints the finals and
their IQM. ``python benchmarks/prototype/head_parts.py stats`` prints the per-unit mean and std of a fresh PDM
policy's trunk outputs (seed 0) on 3,000 random-policy states of CartPole-v1 and LunarLander-v3 (output in
``head_parts_stats.txt``). ``python benchmarks/prototype/head_parts.py report FOLDER [FOLDER ...]`` prints, for each
folder of ``seed_*`` runs (prototype or library, in the order the benchmark's summary reads them), the finals, their
IQM with its 95% CI, mean and std, the mean drop from each run's best evaluation, the mean time per 1k steps, the mean
curve, the first evaluation of each seed above -400, and the IQM of seeds 8 on where there are more than 8 (output in
``head_parts_report.txt``).
"""

import os
import sys
from multiprocessing import Pool

import numpy as np
import torch as th

from sb3_pdm.heads import InputNormalizedHead

PART = os.environ.get("HEAD_PART", "center")
GAIN_STD = 0.25
_original_init = InputNormalizedHead.__init__


def _init(self: InputNormalizedHead, head: th.nn.Module, rate: float) -> None:
    _original_init(self, head, rate)
    if PART == "gain":
        with th.no_grad():
            self.std.fill_(GAIN_STD)
            self.linear.weight.mul_(GAIN_STD)


@th.no_grad()
def _update(self: InputNormalizedHead, features: th.Tensor) -> None:
    if PART == "gain":
        return
    features = features.detach().to(self.mean.dtype).flatten(start_dim=1)
    if features.shape[0] == 0 or not th.isfinite(features).all():
        return
    new_mean, new_std = self._moved_statistics(features.mean(dim=0), (features**2).mean(dim=0), self.MIN_STD)
    if PART == "center":
        new_std = th.ones_like(new_std)
    elif PART == "scale":
        new_mean = th.zeros_like(new_mean)
    linear = self.linear
    linear.bias.add_(linear.weight @ ((new_mean - self.mean) / self.std))
    linear.weight.mul_(new_std / self.std)
    self.mean.copy_(new_mean)
    self.std.copy_(new_std)


def install() -> None:
    if PART not in ("center", "gain", "scale"):
        raise ValueError(f"HEAD_PART must be 'center', 'gain' or 'scale', got {PART!r}")
    InputNormalizedHead.__init__ = _init
    InputNormalizedHead.update = _update


def _run(args: tuple[str, str, str, int]) -> float:
    install()
    from sb3_pdm.benchmark.runner import METHODS, RunSpec, run

    # The current defaults (move limit 0.1) with both heads wrapped, for the PPO settings the limit acts on.
    METHODS["pdm-hnorm-move0.1"] = {"pdm_kwargs": {"max_feature_move": 0.1}, "head_input_norm_rate": 0.01}
    return run(RunSpec(*args), os.path.join(os.path.dirname(__file__), f"results-head-{PART}"))["final"]


def stats() -> None:
    import gymnasium as gym
    from stable_baselines3 import PPO

    from sb3_pdm import PDMPolicy

    th.set_num_threads(1)
    for env_id in ("CartPole-v1", "LunarLander-v3"):
        env = gym.make(env_id)
        observation, _ = env.reset(seed=0)
        env.action_space.seed(0)
        states = []
        for _ in range(3000):
            observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
            states.append(observation)
            if terminated or truncated:
                observation, _ = env.reset()
        model = PPO(PDMPolicy, env_id, seed=0, device="cpu")
        with th.no_grad():
            latents = model.policy.mlp_extractor(model.policy.extract_features(th.tensor(np.array(states))))
        for key, latent in zip(("pi", "vf"), latents):
            mean, std = latent.mean(dim=0), latent.std(dim=0)
            print(
                f"{env_id} {key} trunk at initialisation: mean |unit mean| {mean.abs().mean():.3f}, mean unit std "
                f"{std.mean():.3f}, median |unit mean| / unit std {(mean.abs() / std).median():.2f}"
            )


def report(folders: list[str]) -> None:
    from sb3_pdm.benchmark.report import iqm_with_ci, load_runs

    for folder in folders:
        # The runs in the order the benchmark's summary reads them (the bootstrap CI depends on the order).
        runs = load_runs(folder)
        finals = np.array([float(run["final"]) for run in runs])
        curves = np.array([[row["mean"] for row in run["curve"]] for run in runs])
        print(folder, f"({len(runs)} seeds)")
        print("  finals", [round(float(f), 1) for f in finals], "IQM [95% CI]", [round(v, 1) for v in iqm_with_ci(finals)])
        print(f"  mean {finals.mean():.1f} +- {finals.std():.1f}, drop from best {np.mean(curves.max(axis=1) - finals):.1f}")
        print(f"  s per 1k steps {np.mean([run['sec_per_1k_steps'] for run in runs]):.4f}")
        print("  mean curve", [round(v) for v in curves.mean(axis=0)])
        steps = [[row["timesteps"] for row in run["curve"]] for run in runs]
        print(
            "  first evaluation above -400", [next((t for t, v in zip(s, c) if v > -400), None) for s, c in zip(steps, curves)]
        )
        if len(runs) > 8:
            later = np.array([float(run["final"]) for run in runs if run["spec"]["seed"] >= 8])
            print("  seeds 8 on: IQM [95% CI]", [round(v, 1) for v in iqm_with_ci(later)])


if __name__ == "__main__":
    from sb3_pdm.benchmark.report import iqm_with_ci

    if sys.argv[1] == "stats":
        stats()
        sys.exit()
    if sys.argv[1] == "report":
        report(sys.argv[2:])
        sys.exit()

    method = sys.argv[1]
    env, algo = sys.argv[3:5] if len(sys.argv) > 4 else ("CartPole-v1", "ppo")
    with Pool(2) as pool:
        finals = pool.map(_run, [(env, algo, method, seed) for seed in range(int(sys.argv[2]))])
    print(
        f"{env} {algo} {method} with head part {PART}: finals",
        [round(f, 1) for f in finals],
        "IQM [95% CI]",
        [round(v, 1) for v in iqm_with_ci(np.array(finals))],
    )

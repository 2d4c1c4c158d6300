"""
The heads' shared gradient clip over a whole run (twenty-sixth round of ``docs/benchmark.md``).

Where ``clip_share.py`` gives medians over the first thousands of steps, this script follows one run (seed 0 of
CartPole PPO at the zoo's 100k steps, or the setting given) per method and prints, for each tenth of the run: the median
clip coefficient, the median ratio of the value head's gradient norm to the action head's, the mean training-episode
return (SB3's ``ep_info_buffer``), and the action distribution's mean entropy on the last rollout's observations. It
shows when a run that peaks and falls (``pdm-vloss-norm`` on CartPole PPO) loses its policy, and what the clip does then.

Usage: ``python benchmarks/prototype/clip_trace.py > benchmarks/prototype/clip_trace.txt``
(``python benchmarks/prototype/clip_trace.py LunarLander-v3 a2c pdm pdm-vloss-norm`` for another setting).
"""

import os
import sys

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from clip_share import recorded_clip  # noqa: E402

from sb3_pdm.benchmark.runner import RunSpec, make_model  # noqa: E402


class _Tenths(BaseCallback):
    """At each tenth of the budget, summarise the clip records since the last one."""

    def __init__(self, budget: int, records: list, rows: list) -> None:
        super().__init__()
        self.budget, self.records, self.rows, self.next = budget, records, rows, budget // 10

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps < self.next:
            return
        self.next += self.budget // 10
        obs = th.as_tensor(self.model.rollout_buffer.observations.reshape(-1, *self.model.observation_space.shape))
        with th.no_grad():
            entropy = float(self.model.policy.get_distribution(obs).entropy().mean())
        returns = [info["r"] for info in self.model.ep_info_buffer]
        records = np.array(self.records) if self.records else np.full((1, 4), np.nan)
        self.records.clear()
        pi, vf, _, coef = records.T
        self.rows.append((self.num_timesteps, np.median(coef), np.median(vf / (pi + 1e-12)), np.mean(returns), entropy))


def trace(env: str, algo: str, method: str) -> None:
    model, _, callbacks, budget = make_model(RunSpec(env, algo, method, 0))
    records: list = []
    rows: list = []
    with recorded_clip(model.policy, records):
        model.learn(budget, callback=[*callbacks, _Tenths(budget, records, rows)])
    print(f"{env} {algo} {method}, seed 0, {budget} steps:")
    print("  steps   | clip coef | |g_vf|/|g_pi| | training return | entropy")
    for steps, coef, ratio, mean_return, entropy in rows:
        print(f"  {steps:7d} | {coef:9.3f} | {ratio:13.2f} | {mean_return:15.1f} | {entropy:7.3f}", flush=True)


def main() -> None:
    th.set_num_threads(1)
    env, algo, *methods = sys.argv[1:] or ["CartPole-v1", "ppo", "pdm", "pdm-vloss-norm"]
    for method in methods:
        trace(env, algo, method)


if __name__ == "__main__":
    main()

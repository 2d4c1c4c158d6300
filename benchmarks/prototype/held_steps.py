"""
How many local steps each layer takes per rollout under ``max_feature_move`` (fifteenth round), and how many it holds.

Trains one benchmark run (PPO) and prints, per window of rollouts, the mean number of local steps taken and held per
rollout for every PDM layer, read from :meth:`~sb3_pdm.layers.PDMLayer.pop_diagnostics` after each ``train()``, and
(sixteenth round) how many of the taken steps came after the layer's first held step of the rollout: the limit is
checked on each step's minibatch, so a layer steps again where a minibatch measures a move under the limit.

Usage: ``python benchmarks/prototype/held_steps.py pdm-move0.05 2 [WINDOW [ENV [BUDGET]]]`` (PPO; LunarLander-v3 and
300k steps by default).
"""

import sys

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_pdm.benchmark.runner import RunSpec, make_model
from sb3_pdm.callbacks import named_layers


class HeldSteps(BaseCallback):
    """After each ``train()`` (at the next rollout's start), pops every layer's taken and held local steps."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window
        self.rows: list[list[float]] = []
        # Per layer, the limit's answers (True: held) on this rollout, in order.
        self.checks: dict[str, list[bool]] = {}

    def _on_training_start(self) -> None:
        for name, layer in named_layers(self.model.policy):
            self.checks[name] = []
            layer._moved_too_far = self._recording(layer._moved_too_far, self.checks[name])

    @staticmethod
    def _recording(check, answers: list[bool]):
        def moved_too_far(x, output):
            held = check(x, output)
            answers.append(held)
            return held

        return moved_too_far

    def _after_first_hold(self, name: str) -> float:
        answers = self.checks[name]
        first = answers.index(True) if True in answers else len(answers)
        taken = answers[first:].count(False)
        answers.clear()
        return float(taken)

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps == 0:
            return
        # The benchmark's PDMCallback pops the diagnostics at the rollout's end, before train(): popped here, the
        # counts are those of the last train() alone.
        row = []
        for name, layer in named_layers(self.model.policy):
            stats = layer.pop_diagnostics()
            row += [stats["updates"], stats.get("held", 0.0), self._after_first_hold(name)]
        self.rows.append(row)
        if len(self.rows) % self.window == 0:
            self._print(np.array(self.rows[-self.window :]), f"{self.model.num_timesteps:7d}")

    def _print(self, rows: np.ndarray, label: str) -> None:
        names = [name for name, _ in named_layers(self.model.policy)]
        means = rows.mean(0)
        cells = " | ".join(
            f"{name} {means[3 * k]:.1f} taken ({means[3 * k + 2]:.1f} after the first hold) {means[3 * k + 1]:.1f} held"
            for k, name in enumerate(names)
        )
        print(f"{label} | {cells}", flush=True)

    def _on_step(self) -> bool:
        return True


def main() -> None:
    method, seed = sys.argv[1], int(sys.argv[2])
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    env = sys.argv[4] if len(sys.argv) > 4 else "LunarLander-v3"
    budget = int(sys.argv[5]) if len(sys.argv) > 5 else 300_000
    model, _, callbacks, budget = make_model(RunSpec(env, "ppo", method, seed, budget=budget))
    counter = HeldSteps(window)
    model.learn(budget, callback=CallbackList([*callbacks, counter]))
    counter._print(np.array(counter.rows), f"# {method} seed {seed}, all rollouts (per rollout)")


if __name__ == "__main__":
    main()

"""
Where does a PDM policy's change come from, and can its heads read what its features hold? (CartPole-v1, zoo PPO.)

1. **Policy change per rollout.** For each ``train()`` call of one run, the KL divergence between the action
   distributions before and after it, on the rollout's own states, split into the part the trunk caused (new
   features, old action head), the part the head caused (old features, new head) and the total. Means over quarters
   of the 100k steps, with the mean entropy of the policy before each ``train()``.
2. **What the actor features hold.** An expert (stock PPO, seed 0, 60k steps) labels 4,000 states of its own
   trajectories (30% random actions). At 0, 25k, 50k and 100k steps of a ``pdm`` and a ``frozen`` run, the actor
   trunk's features of those states give: the share of their variance in the top principal direction, and how well a
   linear head learns the expert's action from them in 500 Adam steps (rate 1e-3, batches of 256, held-out accuracy)
   from the raw features and from the features standardised per unit (what ``head_input_norm_rate`` gives the heads).

Usage: ``python benchmarks/prototype/head_conditioning.py SEED [SEED ...] > benchmarks/prototype/head_conditioning.txt``
(committed: seeds 0 and 1).
"""

import copy
import sys

import gymnasium as gym
import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_pdm.benchmark.runner import RunSpec, make_model

QUARTERS = 4


def _kl(p: th.Tensor, q: th.Tensor) -> float:
    return float((p * (th.log(p + 1e-12) - th.log(q + 1e-12))).sum(-1).mean())


class PolicyChange(BaseCallback):
    """KL of each ``train()``'s policy change on the rollout's states: by the trunk, by the head, in total."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, float, float, float, float]] = []
        self._before: tuple[th.Tensor, th.Tensor, th.nn.Module] | None = None

    def _features(self, obs: th.Tensor) -> th.Tensor:
        policy = self.model.policy
        with th.no_grad():
            return policy.mlp_extractor.forward_actor(policy.extract_features(obs, policy.pi_features_extractor))

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        obs = th.as_tensor(buffer.observations.reshape(-1, *buffer.obs_shape)).float()
        self._before = (obs, self._features(obs), copy.deepcopy(self.model.policy.action_net))

    def _on_rollout_start(self) -> None:
        if self._before is None:
            return
        obs, old_features, old_head = self._before
        new_features, new_head = self._features(obs), self.model.policy.action_net
        with th.no_grad():
            before = th.softmax(old_head(old_features), -1)
            by_trunk = th.softmax(old_head(new_features), -1)
            by_head = th.softmax(new_head(old_features), -1)
            after = th.softmax(new_head(new_features), -1)
        entropy = float(-(before * th.log(before + 1e-12)).sum(-1).mean())
        self.rows.append((self.num_timesteps, _kl(before, by_trunk), _kl(before, by_head), _kl(before, after), entropy))

    def _on_step(self) -> bool:
        return True


def expert_states(seed: int = 0, n_states: int = 4000) -> tuple[th.Tensor, th.Tensor]:
    expert, _, _, _ = make_model(RunSpec("CartPole-v1", "ppo", "backprop", seed))
    expert.learn(60_000)
    env, rng, states = gym.make("CartPole-v1"), np.random.default_rng(0), []
    obs, _ = env.reset(seed=5)
    while len(states) < n_states:
        action = expert.predict(obs, deterministic=True)[0]
        states.append(obs)
        if rng.random() < 0.3:
            action = env.action_space.sample()
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()
    states = np.array(states, dtype=np.float32)
    return th.as_tensor(states), th.as_tensor(expert.predict(states, deterministic=True)[0]).long()


def head_accuracy(features: th.Tensor, labels: th.Tensor, steps: int = 500) -> float:
    """Held-out accuracy of a linear head trained by Adam for ``steps`` steps on the first 3/4 of the states."""
    th.manual_seed(0)
    n_train = 3 * len(features) // 4
    head = th.nn.Linear(features.shape[1], 2)
    th.nn.init.orthogonal_(head.weight, 0.01)
    th.nn.init.zeros_(head.bias)
    optimizer = th.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(steps):
        index = th.randint(0, n_train, (256,))
        loss = F.cross_entropy(head(features[index]), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with th.no_grad():
        return float((head(features[n_train:]).argmax(1) == labels[n_train:]).float().mean())


class FeatureProbe(BaseCallback):
    """At the given steps: top-direction variance share and head accuracy, raw and standardised."""

    def __init__(self, states: th.Tensor, labels: th.Tensor, at: list[int]) -> None:
        super().__init__()
        self.states, self.labels, self.at, self.rows = states, labels, list(at), []

    def probe(self) -> None:
        policy = self.model.policy
        with th.no_grad():
            features = policy.mlp_extractor.forward_actor(policy.extract_features(self.states, policy.pi_features_extractor))
        centred = features - features.mean(0)
        variances = th.linalg.svdvals(centred) ** 2
        standardized = centred / features.std(0).clamp_min(0.01)
        self.rows.append(
            (
                self.num_timesteps,
                float(variances[0] / variances.sum()),
                head_accuracy(features, self.labels),
                head_accuracy(standardized, self.labels),
            )
        )

    def _on_training_start(self) -> None:
        self.probe()
        self.at.pop(0)

    def _on_step(self) -> bool:
        if self.at and self.num_timesteps >= self.at[0]:
            self.at.pop(0)
            self.probe()
        return True


def main(seeds: list[int]) -> None:
    th.set_num_threads(1)
    states, labels = expert_states()
    print("# 1. Policy change per train() call (KL on the rollout's states), mean over each quarter of 100k steps")
    print("method   seed  steps          KL by trunk  KL by head   KL total    entropy before")
    for seed in seeds:
        for method in ("backprop", "pdm"):
            model, _, callbacks, budget = make_model(RunSpec("CartPole-v1", "ppo", method, seed))
            change = PolicyChange()
            model.learn(budget, callback=CallbackList([*callbacks, change]))
            rows = np.array(change.rows)
            for quarter in range(QUARTERS):
                low, high = quarter * budget // QUARTERS, (quarter + 1) * budget // QUARTERS
                part = rows[(rows[:, 0] > low) & (rows[:, 0] <= high)]
                print(
                    f"{method:8s} {seed:4d}  {low // 1000:3d}k-{high // 1000:3d}k     "
                    + "   ".join(f"{value:.2e}" for value in part[:, 1:4].mean(0))
                    + f"   {part[:, 4].mean():.3f}"
                )
    print()
    print("# 2. Actor features of expert-labelled states: top direction's variance share; head accuracy after 500 Adam steps")
    print("method   seed   steps   top share   acc raw   acc standardised")
    for seed in seeds:
        for method in ("pdm", "frozen"):
            model, _, callbacks, budget = make_model(RunSpec("CartPole-v1", "ppo", method, seed))
            probe = FeatureProbe(states, labels, [0, 25_000, 50_000, budget])
            model.learn(budget, callback=CallbackList([*callbacks, probe]))
            for steps, share, raw, standardized in probe.rows:
                print(f"{method:8s} {seed:4d} {steps:7d}   {share:9.3f}   {raw:7.3f}   {standardized:7.3f}")


if __name__ == "__main__":
    main([int(seed) for seed in sys.argv[1:]] or [0])

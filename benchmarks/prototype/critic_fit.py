"""
Offline critic check: how well can a critic trunk + value head, trained as PPO trains them, fit the value function?

1. Records every rollout of one PPO run on CartPole-v1 (zoo settings, 100k steps) with the old PDM defaults
   (``feature_scale=1.0``, plain value head): the states a struggling PDM policy visits.
2. Replays the rollouts through each critic below, as PPO would: values of the rollout from the critic itself,
   truncated episodes bootstrapped with it, GAE (gamma 0.98, lambda 0.8), then 20 epochs of one 256-sample
   minibatch on the value loss (value head: Adam, rate 1e-3 decaying linearly; PDM layers: their local rule, guided
   by the returns through the policy's own route). No policy is trained: only the critic changes.
3. Prints, over the last three quarters of the rollouts, the mean explained variance of the critic's values
   (computed before training on the rollout, as SB3 logs it) and the mean correlation of its GAE advantages with
   those of a backprop 64-64 critic replayed on the same rollouts (``bp``, the reference).

Usage: ``python benchmarks/prototype/critic_fit.py SEED [SEED ...] > benchmarks/prototype/critic_fit.txt`` (committed: seed 0).
"""

import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import explained_variance

from sb3_pdm import PDMPolicy, PDMRolloutBuffer
from sb3_pdm.guidance import GuidanceSignals, attach_signals
from sb3_pdm.layers import pdm_layers

GAMMA, LAMBDA, EPOCHS, LR, BUDGET = 0.98, 0.8, 20, 1e-3, 100_000
OLD_DEFAULTS = dict(pdm_kwargs=dict(feature_scale=1.0), value_norm_rate=None)

#: Critics by name: ``(kind, policy_kwargs)``; kind ``bp`` (backprop), ``pdm`` or ``frozen`` (PDM layers fixed).
CRITICS: dict[str, tuple[str, dict[str, Any]]] = {
    "bp": ("bp", {}),
    "bp-1-layer": ("bp", {"net_arch": dict(pi=[64], vf=[64])}),
    "frozen": ("frozen", {"value_norm_rate": None}),
    "frozen-vn": ("frozen", {"value_norm_rate": 0.01}),
    "pdm fs1": ("pdm", {"pdm_kwargs": dict(feature_scale=1.0), "value_norm_rate": None}),
    "pdm fs1 vn": ("pdm", {"pdm_kwargs": dict(feature_scale=1.0), "value_norm_rate": 0.01}),
    "pdm fs0.5 vn": ("pdm", {"pdm_kwargs": dict(feature_scale=0.5), "value_norm_rate": 0.01}),
    "pdm fs0.25": ("pdm", {"pdm_kwargs": dict(feature_scale=0.25), "value_norm_rate": None}),
    "pdm fs0.25 vn": ("pdm", {"pdm_kwargs": dict(feature_scale=0.25), "value_norm_rate": 0.01}),
    "pdm fs0.1 vn": ("pdm", {"pdm_kwargs": dict(feature_scale=0.1), "value_norm_rate": 0.01}),
    "pdm fs0.25 vn unguided": ("pdm", {"pdm_kwargs": dict(feature_scale=0.25, guidance_coef=0.0), "value_norm_rate": 0.01}),
    "pdm fs0.25 vn local_epochs=1": ("pdm", {"pdm_kwargs": dict(feature_scale=0.25, local_epochs=1), "value_norm_rate": 0.01}),
}


class _Recorder(BaseCallback):
    """Keeps each rollout's observations, raw rewards, episode starts and the final observations of truncations."""

    def __init__(self) -> None:
        super().__init__()
        self.rollouts: list[dict[str, np.ndarray]] = []

    def _on_rollout_start(self) -> None:
        self.rewards, self.truncated, self.final_obs = [], [], []

    def _on_step(self) -> bool:
        dones, infos = self.locals["dones"], self.locals["infos"]
        # Copied now: SB3 adds the bootstrapped value of truncated episodes to this array after the callback.
        self.rewards.append(np.array(self.locals["rewards"], dtype=np.float32))
        truncated = np.array([bool(d and info.get("TimeLimit.truncated", False)) for d, info in zip(dones, infos)])
        final = np.stack([np.asarray(info.get("terminal_observation", np.zeros(4)), dtype=np.float32) for info in infos])
        self.truncated.append(truncated)
        self.final_obs.append(final)
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        self.rollouts.append(
            dict(
                obs=buffer.observations.copy(),
                starts=buffer.episode_starts.copy(),
                actions=buffer.actions.copy(),
                rewards=np.stack(self.rewards),
                truncated=np.stack(self.truncated),
                final_obs=np.stack(self.final_obs),
                last_obs=self.locals["new_obs"].copy(),
                last_dones=self.locals["dones"].astype(np.float32),
            )
        )


def record(seed: int) -> list[dict[str, np.ndarray]]:
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO(
        PDMPolicy,
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=LAMBDA,
        gamma=GAMMA,
        n_epochs=EPOCHS,
        ent_coef=0.0,
        learning_rate=lambda p: LR * p,
        clip_range=lambda p: 0.2 * p,
        policy_kwargs=OLD_DEFAULTS,
        rollout_buffer_class=PDMRolloutBuffer,
        seed=seed,
        device="cpu",
    )
    recorder = _Recorder()
    model.learn(BUDGET, callback=recorder)
    return recorder.rollouts


def replay(rollouts: list[dict[str, np.ndarray]], kind: str, policy_kwargs: dict[str, Any], seed: int) -> list[np.ndarray]:
    """Train one critic on the rollouts; return its advantages and explained variances, one entry per rollout."""
    th.manual_seed(seed)
    env = gym.make("CartPole-v1")
    schedule = lambda p: LR * p  # noqa: E731
    if kind == "bp":
        policy = ActorCriticPolicy(env.observation_space, env.action_space, schedule, **policy_kwargs)
        params = list(policy.mlp_extractor.value_net.parameters()) + list(policy.value_net.parameters())
    else:
        policy = PDMPolicy(env.observation_space, env.action_space, schedule, **policy_kwargs)
        params = list(policy.value_net.parameters())
        if kind == "frozen":
            for layer in pdm_layers(policy):
                layer.local_learning = False
    optimizer = th.optim.Adam(params, lr=LR, eps=1e-5)

    def values(obs: np.ndarray) -> np.ndarray:
        with th.no_grad():
            return policy.predict_values(th.as_tensor(obs).reshape(-1, 4)).reshape(obs.shape[:-1]).numpy()

    advantages, evs = [], []
    for k, r in enumerate(rollouts):
        progress = 1.0 - k / len(rollouts)
        for group in optimizer.param_groups:
            group["lr"] = LR * progress
        for layer in pdm_layers(policy):
            layer.set_progress(progress)
        policy.set_training_mode(False)
        v, last = values(r["obs"]), values(r["last_obs"])
        rewards = r["rewards"] + GAMMA * values(r["final_obs"]) * r["truncated"]
        adv, gae = np.zeros_like(rewards), 0.0
        for t in reversed(range(len(rewards))):
            not_done = 1.0 - (r["last_dones"] if t == len(rewards) - 1 else r["starts"][t + 1])
            next_v = last if t == len(rewards) - 1 else v[t + 1]
            gae = rewards[t] + GAMMA * next_v * not_done - v[t] + GAMMA * LAMBDA * not_done * gae
            adv[t] = gae
        returns = adv + v
        advantages.append(adv)
        evs.append(explained_variance(v.ravel(), returns.ravel()))
        policy.set_training_mode(True)
        obs, ret = th.as_tensor(r["obs"]).reshape(-1, 4), th.as_tensor(returns, dtype=th.float32).reshape(-1)
        adv_t, act = th.as_tensor(adv, dtype=th.float32).reshape(-1), th.as_tensor(r["actions"]).reshape(-1, 1)
        for epoch in range(EPOCHS):
            index = th.randperm(len(ret))
            batch = obs[index].clone()
            attach_signals(batch, GuidanceSignals(ret[index], adv_t[index], act[index], epoch))
            loss = F.mse_loss(policy.predict_values(batch).flatten(), ret[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return [np.array(evs), *advantages]


def main() -> None:
    th.set_num_threads(1)
    print("seed\tcritic\texplained variance\tadvantage correlation with bp\tseconds")
    for seed in map(int, sys.argv[1:]):
        rollouts = record(seed)
        start = len(rollouts) // 4
        reference = None
        for name, (kind, policy_kwargs) in CRITICS.items():
            began = time.perf_counter()
            evs, *advantages = replay(rollouts, kind, policy_kwargs, seed)
            if reference is None:
                reference = advantages
            corr = np.mean([np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(advantages[start:], reference[start:])])
            print(f"{seed}\t{name}\t{evs[start:].mean():.3f}\t{corr:.3f}\t{time.perf_counter() - began:.0f}", flush=True)


if __name__ == "__main__":
    main()

"""
How much each observation dimension weighs in raw Euclidean input distances (eleventh round, ``input_norm_rate``).

For each env, 20,000 steps of a uniformly random policy (seed 0): the per-dimension std of the observations and each
dimension's share of the mean squared pairwise distance, which is its share of the summed variances
(``E ||x_i - x_j||^2 = 2 * sum_d var_d`` for independent samples).

Usage: ``python benchmarks/prototype/obs_scales.py > benchmarks/prototype/obs_scales.txt``
"""

import gymnasium as gym
import numpy as np

ENVS = {
    "CartPole-v1": ["x", "x_dot", "theta", "theta_dot"],
    "LunarLander-v3": ["x", "y", "vx", "vy", "angle", "angular_vel", "left_leg", "right_leg"],
}


def observation_std(env_id: str, steps: int = 20_000, seed: int = 0) -> np.ndarray:
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    observations = []
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
    return np.asarray(observations).std(axis=0)


if __name__ == "__main__":
    for env_id, names in ENVS.items():
        std = observation_std(env_id)
        share = std**2 / (std**2).sum()
        print(f"{env_id}, random policy, 20,000 steps, seed 0")
        for name, s, p in zip(names, std, share):
            print(f"  {name:12s} std {s:6.3f}  share of squared distances {100 * p:5.1f}%")

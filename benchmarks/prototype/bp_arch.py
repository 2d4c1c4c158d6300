"""
Stock SB3 PPO (backprop) on CartPole-v1 with the zoo's hyperparameters and a given ``net_arch``: which trunk matters.

Usage: ``python benchmarks/prototype/bp_arch.py "dict(pi=[], vf=[64, 64])" SEED >> benchmarks/prototype/bp_arch.txt``
Prints ``net_arch seed mean_return`` (20 deterministic episodes after 100k steps).
"""

import sys

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_pdm.benchmark.zoo_hyperparams import algo_kwargs, zoo_entry


def main() -> None:
    th.set_num_threads(1)
    net_arch, seed = eval(sys.argv[1]), int(sys.argv[2])
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    kwargs = algo_kwargs(zoo_entry("ppo", "CartPole-v1"))
    model = PPO("MlpPolicy", env, seed=seed, policy_kwargs=dict(net_arch=net_arch), **kwargs)
    model.learn(100_000)
    mean, _ = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=seed + 99), n_eval_episodes=20)
    print(f"{sys.argv[1]}\t{seed}\t{mean:.1f}")


if __name__ == "__main__":
    main()

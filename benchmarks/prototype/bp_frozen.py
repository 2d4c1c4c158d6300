"""
Stock SB3 PPO (backprop) on CartPole-v1 with the zoo's hyperparameters, one trunk frozen at initialisation: which
trunk must learn.

Usage: ``python benchmarks/prototype/bp_frozen.py actor|critic SEED >> benchmarks/prototype/bp_frozen.txt``
Prints ``frozen-<trunk> seed mean_return`` (20 deterministic episodes after 100k steps).
"""

import sys

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_pdm.benchmark.zoo_hyperparams import algo_kwargs, zoo_entry


def main() -> None:
    th.set_num_threads(1)
    trunk, seed = sys.argv[1], int(sys.argv[2])
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, **algo_kwargs(zoo_entry("ppo", "CartPole-v1")))
    extractor = model.policy.mlp_extractor
    for param in (extractor.policy_net if trunk == "actor" else extractor.value_net).parameters():
        param.requires_grad_(False)
    model.learn(100_000)
    mean, _ = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=seed + 99), n_eval_episodes=20)
    print(f"frozen-{trunk}\t{seed}\t{mean:.1f}", flush=True)


if __name__ == "__main__":
    main()

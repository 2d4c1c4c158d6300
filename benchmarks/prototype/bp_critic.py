"""
A PDM actor trunk beside a backprop critic trunk (a hybrid that is not PDM; a diagnostic only): how good is the PDM
actor trunk when the critic is as good as backprop makes it? PPO, CartPole-v1, the zoo's hyperparameters.

Usage: ``python benchmarks/prototype/bp_critic.py PDM_KWARGS SEED [frozen] >> benchmarks/prototype/bp_critic.txt``,
e.g. ``"{}"``, ``"dict(guidance_coef=0.0)"``, ``"dict(local_lr=3e-5)"``; ``frozen``: the PDM actor trunk never steps.
Prints ``pdm_kwargs [frozen] seed mean_return`` (20 deterministic episodes after 100k steps).
"""

import sys

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from torch import nn

from sb3_pdm import PDMCallback, PDMPolicy
from sb3_pdm.benchmark.zoo_hyperparams import algo_kwargs, zoo_entry
from sb3_pdm.layers import pdm_layers


def main() -> None:
    th.set_num_threads(1)
    pdm_kwargs, seed = eval(sys.argv[1]), int(sys.argv[2])
    frozen = sys.argv[3:] == ["frozen"]
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    kwargs = algo_kwargs(zoo_entry("ppo", "CartPole-v1"))
    # Run on the v1 defaults (saturating features, plain value head), which these results were measured with.
    pdm_kwargs = {"feature_scale": 1.0, **pdm_kwargs}
    kwargs["policy_kwargs"] = dict(kwargs.get("policy_kwargs", {}), pdm_kwargs=pdm_kwargs, value_norm_rate=None)
    model = PPO(PDMPolicy, env, seed=seed, **kwargs)
    policy = model.policy
    # SB3's own critic trunk (64-64 tanh, orthogonal init), trained by the PPO loss with the heads.
    critic = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
    for module in critic:
        if isinstance(module, nn.Linear):
            nn.init.orthogonal_(module.weight, 2**0.5)
            module.bias.data.zero_()
    policy.mlp_extractor.value_net = critic
    policy._guidance_roles = (pdm_layers(policy.mlp_extractor.policy_net), [], [])
    for layer in pdm_layers(policy):
        layer.local_learning = not frozen
    policy.optimizer = th.optim.Adam(policy.head_parameters(), lr=policy.optimizer.param_groups[0]["lr"], eps=1e-5)
    model.learn(100_000, callback=PDMCallback())
    mean, _ = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=seed + 99), n_eval_episodes=20)
    print(f"{sys.argv[1]} {'frozen' if frozen else ''}\t{seed}\t{mean:.1f}", flush=True)


if __name__ == "__main__":
    main()

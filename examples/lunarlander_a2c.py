"""
A2C with a PDM policy on LunarLander-v3, logged to TensorBoard, saved, reloaded and evaluated.

Hyperparameters are RL-Zoo's tuned A2C values for LunarLander-v3 (``hyperparams/a2c.yml``: 8 envs, ``n_steps=5``,
``gamma=0.995``, linearly decaying learning rate). ``PDMCallback`` routes returns and advantages to the PDM layers
and records their local losses under ``pdm/`` next to SB3's ``train/`` and ``rollout/`` metrics. On seed 0 it scored
-193 after 200k steps: this is a setting where PDM does not yet match backprop (the README's Results compare them).

    python examples/lunarlander_a2c.py                     # 200k steps, about 3 min on 2 cores
    tensorboard --logdir runs/lunarlander_a2c
"""

import argparse
import os

from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_pdm import PDMCallback, PDMPolicy


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--timesteps", type=int, default=200_000, help="training steps (RL-Zoo: 2e5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and environments")
    parser.add_argument("--n-envs", type=int, default=8, help="parallel environments (RL-Zoo: 8)")
    parser.add_argument("--logdir", default="runs/lunarlander_a2c", help="TensorBoard log folder")
    parser.add_argument("--log-interval", type=int, default=100, help="log every this many A2C updates")
    parser.add_argument("--save-path", default="runs/lunarlander_a2c/a2c_pdm_lunarlander", help="model file (.zip)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    env = make_vec_env("LunarLander-v3", n_envs=args.n_envs, seed=args.seed)
    model = A2C(
        PDMPolicy,
        env,
        n_steps=5,
        gamma=0.995,
        learning_rate=lambda progress_remaining: 0.00083 * progress_remaining,  # RL-Zoo's lin_0.00083
        ent_coef=0.00001,
        policy_kwargs=dict(pdm_kwargs=dict(local_lr=3e-4, guidance_coef=1.0, feature_scale=0.25)),
        tensorboard_log=args.logdir,
        seed=args.seed,
        verbose=1,
    )
    model.learn(total_timesteps=args.timesteps, callback=PDMCallback(), log_interval=args.log_interval, tb_log_name="a2c_pdm")
    model.save(args.save_path)

    # Reload as a user would; the local optimizers' state comes back with the layers.
    model = A2C.load(args.save_path, env=env)
    eval_env = make_vec_env("LunarLander-v3", n_envs=1, seed=args.seed + 1000)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)
    print(f"A2C (pdm) on LunarLander-v3, {args.timesteps} steps: return {mean_return:.1f} +/- {std_return:.1f}")
    print(f"model: {os.path.abspath(args.save_path)}.zip, TensorBoard logs: {os.path.abspath(args.logdir)}")


if __name__ == "__main__":
    main()

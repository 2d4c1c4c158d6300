"""
``MultiInputPDMPolicy`` with PPO on a ``Dict`` observation: SB3's ``SimpleMultiObsEnv``.

``SimpleMultiObsEnv`` is a 4x4 grid world (start anywhere, goal in the corner, -0.1 per step, +1 at the goal, at most
100 steps) whose state is shown twice: the column as a random 5-vector (``"vec"``) and the row as a random 64x64
image (``"img"``). ``PDMCombinedExtractor`` sends the image through a PDM NatureCNN and flattens the vector; PDM
actor and critic trunks follow. The policy is evaluated before and after training.

    python examples/multi_input_policy.py                  # 20k steps, about 3 min on 2 cores
    python examples/multi_input_policy.py --timesteps 50000 --seed 1
"""

import argparse

from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_pdm import MultiInputPDMPolicy, PDMCallback


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--timesteps", type=int, default=20_000, help="training steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and environments")
    parser.add_argument("--n-envs", type=int, default=4, help="parallel environments")
    parser.add_argument("--n-steps", type=int, default=256, help="PPO steps per environment and rollout")
    parser.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    env = make_vec_env(SimpleMultiObsEnv, n_envs=args.n_envs, seed=args.seed)
    eval_env = make_vec_env(SimpleMultiObsEnv, n_envs=1, seed=args.seed + 1000)
    model = PPO(MultiInputPDMPolicy, env, n_steps=args.n_steps, batch_size=64, n_epochs=4, seed=args.seed)

    before, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)
    model.learn(total_timesteps=args.timesteps, callback=PDMCallback())
    after, std_after = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)

    print(f"PPO (MultiInputPDMPolicy) on SimpleMultiObsEnv, {args.timesteps} steps:")
    print(f"  return before training {before:.2f}, after {after:.2f} +/- {std_after:.2f}  (best possible: about 0.5 to 1)")


if __name__ == "__main__":
    main()

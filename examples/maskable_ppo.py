"""
``MaskablePDMPolicy`` with sb3-contrib's ``MaskablePPO`` on an environment with invalid actions.

``InvalidActionEnvDiscrete`` (sb3-contrib's test env) shows one of 80 states per step and pays 1 for the action equal
to the state; 60 of the other actions are masked out each step, so a uniform choice among the valid ones scores
100 / 20 = 5 per 100-step episode, a perfect policy 100. The masks reach the action head through
``env.action_masks()``, as in sb3-contrib, and the PDM trunks are guided by the actions taken (which the masks
allowed). Evaluated with sb3-contrib's maskable ``evaluate_policy``.

    python examples/maskable_ppo.py                        # 50k steps, about 2 min on 2 cores
    python examples/maskable_ppo.py --timesteps 100000 --seed 1
"""

import argparse

from sb3_contrib import MaskablePPO
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from sb3_contrib.common.maskable.evaluation import evaluate_policy
from stable_baselines3.common.env_util import make_vec_env

from sb3_pdm import PDMCallback
from sb3_pdm.contrib import MaskablePDMPolicy

ENV_KWARGS = dict(dim=80, n_invalid_actions=60)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--timesteps", type=int, default=50_000, help="training steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and environments")
    parser.add_argument("--n-steps", type=int, default=2048, help="PPO steps per rollout (SB3's default: 2048)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    env = make_vec_env(InvalidActionEnvDiscrete, env_kwargs=ENV_KWARGS, seed=args.seed)
    model = MaskablePPO(MaskablePDMPolicy, env, n_steps=args.n_steps, seed=args.seed)
    model.learn(total_timesteps=args.timesteps, callback=PDMCallback())

    eval_env = make_vec_env(InvalidActionEnvDiscrete, env_kwargs=ENV_KWARGS, seed=args.seed + 1000)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)
    print(f"MaskablePPO (MaskablePDMPolicy), {args.timesteps} steps: return {mean_return:.1f} +/- {std_return:.1f}")
    print("  (uniform over the valid actions: about 5, perfect: 100)")


if __name__ == "__main__":
    main()

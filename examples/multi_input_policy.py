"""
``MultiInputPDMPolicy`` with PPO on a ``Dict`` observation that holds an image and a vector.

The environment, ``SideAndCueEnv``, shows a 36x36 dark image (``"image"``) with a bright square in its left or right
half, and a one-hot cue of two values (``"cue"``). Of its four actions, the one worth 1 is ``2 * cue + side``:
the agent needs both keys. ``PDMCombinedExtractor`` sends the image through a PDM NatureCNN and flattens the cue; PDM
actor and critic trunks follow. Each episode holds 20 steps: a random policy scores about 5, one that reads a single
key at most 10, a perfect one 20. The policy is evaluated before and after training. For reference, on seed 0 with
20k steps: PDM 9.6, the frozen control (``pdm_kwargs=dict(local_learning=False)``) 12.6, stock ``MultiInputPolicy``
(backprop) 20.0. The cue is 2 of the trunk's 258 input features; how PDM layers weigh a small key against a large
one is an open question.

    python examples/multi_input_policy.py                  # 20k steps, about 1 min on 2 cores
    python examples/multi_input_policy.py --timesteps 50000 --seed 1
"""

import argparse

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_pdm import MultiInputPDMPolicy, PDMCallback


class SideAndCueEnv(gym.Env):
    """
    Name the half of the image that holds the bright square, in the code the cue selects: reward 1 for action
    ``2 * cue + side``, 0 otherwise.

    :param size: Image height and width in pixels (at least 36 for NatureCNN).
    :param square: Side of the bright square in pixels.
    :param noise: Background pixels are uniform in ``[0, noise)``.
    :param episode_length: Steps per episode.
    """

    def __init__(self, size: int = 36, square: int = 6, noise: int = 32, episode_length: int = 20):
        super().__init__()
        self.size, self.square, self.noise, self.episode_length = size, square, noise, episode_length
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 1), dtype=np.uint8),
                "cue": spaces.Box(0.0, 1.0, (2,), dtype=np.float32),
            }
        )
        self.action_space = spaces.Discrete(4)

    def _new_observation(self) -> dict[str, np.ndarray]:
        self.side = int(self.np_random.integers(2))  # 0: left half, 1: right half
        self.cue = int(self.np_random.integers(2))
        half = self.size // 2
        image = self.np_random.integers(0, self.noise, (self.size, self.size, 1), dtype=np.uint8)
        x = int(self.np_random.integers(0, half - self.square + 1)) + self.side * half
        y = int(self.np_random.integers(0, self.size - self.square + 1))
        image[y : y + self.square, x : x + self.square] = 255
        return {"image": image, "cue": np.eye(2, dtype=np.float32)[self.cue]}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
        super().reset(seed=seed)
        self.steps = 0
        return self._new_observation(), {}

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        reward = float(int(action) == 2 * self.cue + self.side)
        self.steps += 1
        return self._new_observation(), reward, False, self.steps >= self.episode_length, {}


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
    env = make_vec_env(SideAndCueEnv, n_envs=args.n_envs, seed=args.seed)
    eval_env = make_vec_env(SideAndCueEnv, n_envs=1, seed=args.seed + 1000)
    model = PPO(MultiInputPDMPolicy, env, n_steps=args.n_steps, batch_size=64, n_epochs=4, seed=args.seed)

    before, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)
    model.learn(total_timesteps=args.timesteps, callback=PDMCallback())
    after, std_after = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)

    print(f"PPO (MultiInputPDMPolicy) on SideAndCueEnv, {args.timesteps} steps:")
    print(f"  return before training {before:.1f}, after {after:.1f} +/- {std_after:.1f}")
    print("  (random policy: about 5, reading one key only: at most 10, perfect: 20)")


if __name__ == "__main__":
    main()

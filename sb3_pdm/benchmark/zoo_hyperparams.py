"""RL-Zoo's tuned hyperparameters (shipped with ``rl_zoo3``), turned into keyword arguments of the SB3 classes."""

import os
from typing import Any

import rl_zoo3
import torch as th
import yaml
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

# Keys of a zoo entry that configure the environment or the run, not the algorithm.
_RUN_KEYS = ("n_envs", "n_timesteps", "policy", "normalize", "env_wrapper", "frame_stack", "callback", "vec_env_wrapper")


def zoo_entry(algo: str, env_id: str) -> dict[str, Any]:
    """The raw RL-Zoo hyperparameter entry of ``env_id`` for ``algo``."""
    path = os.path.join(os.path.dirname(rl_zoo3.__file__), "hyperparams", f"{algo}.yml")
    with open(path) as file:
        entries = yaml.safe_load(file)
    if env_id not in entries:
        raise ValueError(f"RL-Zoo has no {algo} hyperparameters for env '{env_id}' (see {path})")
    return dict(entries[env_id])


def _schedule(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("lin_"):
        return LinearSchedule(float(value[4:]), 0.0, 1.0)
    return value


def algo_kwargs(entry: dict[str, Any]) -> dict[str, Any]:
    """Algorithm keyword arguments of a zoo entry: ``lin_x`` schedules resolved, ``policy_kwargs`` evaluated."""
    kwargs = {key: _schedule(value) for key, value in entry.items() if key not in _RUN_KEYS}
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"], {"nn": nn, "th": th, "dict": dict})
    return kwargs


def normalize_kwargs(entry: dict[str, Any]) -> dict[str, Any] | None:
    """``VecNormalize`` keyword arguments of a zoo entry, or ``None`` when it does not normalise."""
    normalize = entry.get("normalize", False)
    if isinstance(normalize, str):
        return eval(normalize)
    return {} if normalize else None

"""
Hyperparameter entries of the benchmark's methods, read and turned into SB3 objects the way RL-Zoo does it.

Two sources: RL-Zoo's own files (shipped with ``rl_zoo3``, tuned for backprop) and this project's ``hyperparams/``
folder (the PDM entries). An entry is read here as a plain dict, so that the process which plans the runs can ship it
to workers that have neither file (a Ray cluster, ``docs/cluster.md``); :func:`preprocess` then turns it into keyword
arguments with RL-Zoo's own ``ExperimentManager`` code (schedules ``lin_x``, ``policy_kwargs`` and ``normalize``
strings, ``policy`` and ``callback`` class names, env wrappers), so that a benchmark run builds what ``rl_zoo3 train``
builds from the same entry.
"""

import argparse
import os
from contextlib import redirect_stdout
from io import StringIO
from typing import Any

import rl_zoo3
import yaml
from rl_zoo3.exp_manager import ExperimentManager
from rl_zoo3.utils import SimpleLinearSchedule
from stable_baselines3.common.utils import LinearSchedule

#: ``hyperparams/`` of this project (a source checkout): the PDM entries.
PROJECT_HYPERPARAMS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "hyperparams")
#: RL-Zoo's own hyperparameter files.
ZOO_HYPERPARAMS = os.path.join(os.path.dirname(rl_zoo3.__file__), "hyperparams")

#: Keys of a zoo entry that set up the environment or the run, not the algorithm: kept by the ``sb3defaults`` methods,
#: which leave every algorithm hyperparameter at SB3's default.
RUN_KEYS = ("n_envs", "n_timesteps", "normalize", "policy", "env_wrapper", "vec_env_wrapper", "frame_stack", "env_kwargs")

#: The algorithm hyperparameters that RL-Zoo turns into schedules.
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")


def read_entry(algo: str, env_id: str, folder: str = ZOO_HYPERPARAMS) -> dict[str, Any]:
    """
    The raw hyperparameter entry of ``env_id`` in ``folder/<algo>.yml``, as RL-Zoo reads it (``yaml.safe_load``).

    :param algo: Algorithm name (the file's stem).
    :param env_id: Gymnasium env id (the entry's key).
    :param folder: Folder of the ``<algo>.yml`` files: :data:`ZOO_HYPERPARAMS` or :data:`PROJECT_HYPERPARAMS`.
    """
    path = os.path.join(folder, f"{algo}.yml")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {algo} hyperparameter file: {path}")
    with open(path) as file:
        entries = yaml.safe_load(file)
    if env_id not in entries:
        raise ValueError(f"{path} has no {algo} hyperparameters for env '{env_id}'")
    return dict(entries[env_id])


def sb3_defaults(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with every algorithm hyperparameter (and ``policy_kwargs``, ``callback``) left at SB3's defaults."""
    return {key: value for key, value in entry.items() if key in RUN_KEYS}


def experiment_manager(algo: str, env_id: str, seed: int, n_timesteps: int | None = None) -> ExperimentManager:
    """
    An RL-Zoo ``ExperimentManager`` for one run, used for its preprocessing and env creation only (it creates no
    folder and no file until ``setup_experiment``, which the benchmark does not call).
    """
    return ExperimentManager(
        argparse.Namespace(), algo, env_id, log_folder="logs", n_timesteps=n_timesteps or 0, seed=seed, verbose=0
    )


def preprocess(manager: ExperimentManager, entry: dict[str, Any]) -> dict[str, Any]:
    """
    Algorithm keyword arguments of ``entry`` (``policy`` and ``callback`` included, as objects), by RL-Zoo's own
    ``ExperimentManager._preprocess_hyperparams``; the manager keeps what configures the envs (``n_envs``,
    ``n_timesteps``, normalisation, wrappers) for its ``create_envs``.

    RL-Zoo evaluates the ``policy_kwargs`` and ``normalize`` strings with Python's ``eval`` itself (``nn`` and ``th`` in
    scope) and offers no public function for it: reusing its method keeps the benchmark's reading of an entry
    identical to ``rl_zoo3 train``'s rather than a second parser of the same strings.

    One deviation: RL-Zoo's ``lin_x`` schedule (``SimpleLinearSchedule``) turns negative once training runs past
    ``n_timesteps`` (the last rollout usually overshoots it), which makes the last update step with a negative
    learning rate and clip range. It is replaced by SB3's ``LinearSchedule`` from x to 0, which stops at 0 and takes
    the same values before that: the committed runs were measured with it.

    :param manager: A manager from :func:`experiment_manager`.
    :param entry: A raw entry (:func:`read_entry`); not modified.
    :return: Keyword arguments of the algorithm class, with ``callback`` holding the entry's callbacks (a list).
    """
    with redirect_stdout(StringIO()):
        kwargs, env_wrapper, callbacks, vec_env_wrapper = manager._preprocess_hyperparams(dict(entry))
    for key in SCHEDULE_KEYS:
        if isinstance(kwargs.get(key), SimpleLinearSchedule):
            kwargs[key] = LinearSchedule(kwargs[key].initial_value, 0.0, 1.0)
    manager.env_wrapper, manager.vec_env_wrapper = env_wrapper, vec_env_wrapper
    kwargs["callback"] = callbacks
    return kwargs

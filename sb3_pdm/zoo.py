"""
RL-Zoo with PDM policies: runs rl_zoo3's scripts after registering, in this process only (no zoo file changes):

- the ``maskable_ppo`` algorithm key (sb3-contrib's ``MaskablePPO``) when ``rl_zoo3.utils.ALGOS`` lacks it, with the
  zoo's PPO sampler for ``-optimize``;
- an Optuna search over PDM's options next to the algorithm's own, for the on-policy algorithms (``ppo``, ``a2c``,
  ``trpo``, ``maskable_ppo``): :func:`pdm_sampler` wraps each of the zoo's samplers in
  ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER``, and :func:`pdm_converter` its converters (used to load a trial
  with ``--storage``/``--study-name``/``--trial-id``).

Usage, with the arguments of ``python -m rl_zoo3.train`` (``enjoy``, ``plot_train``, ``plot_from_file`` and
``all_plots`` work too, as with the ``rl_zoo3`` command)::

    python -m sb3_pdm.zoo train --algo ppo --env CartPole-v1 --conf-file hyperparams/ppo.yml
    python -m sb3_pdm.zoo train --algo ppo --env CartPole-v1 --conf-file hyperparams/ppo.yml -optimize --n-trials 20

Plain training needs none of this: ``python -m rl_zoo3.train --conf-file hyperparams/ppo.yml`` imports the PDM
policy and callback by name. See ``docs/zoo.md``.
"""

import importlib
import re
import sys
from collections.abc import Callable
from typing import Any

import optuna
from rl_zoo3 import hyperparams_opt
from rl_zoo3.utils import ALGOS, get_class_by_name
from sb3_contrib import MaskablePPO

from sb3_pdm.policies import PDMActorCriticMixin

#: Signature of the zoo's samplers: ``(trial, n_actions, n_envs, additional_args) -> hyperparameters``.
Sampler = Callable[[optuna.Trial, int, int, dict], dict[str, Any]]
#: Signature of the zoo's converters: sampled Optuna parameters -> hyperparameters.
Converter = Callable[[dict[str, Any]], dict[str, Any]]

#: Zoo algorithm keys whose samplers get the PDM search (the on-policy algorithms PDM policies serve).
PDM_ALGOS = ("a2c", "ppo", "trpo", "maskable_ppo")
#: Prefix of the Optuna parameters of PDM options (``pdm_local_lr``, ...), which keeps them apart from the algorithm's.
PREFIX = "pdm_"

#: rl_zoo3's scripts, as the ``rl_zoo3`` command names them: (module, function).
_SCRIPTS = {
    "train": ("rl_zoo3.train", "train"),
    "enjoy": ("rl_zoo3.enjoy", "enjoy"),
    "plot_train": ("rl_zoo3.plots.plot_train", "plot_train"),
    "plot_from_file": ("rl_zoo3.plots.plot_from_file", "plot_from_file"),
    "all_plots": ("rl_zoo3.plots.all_plots", "all_plots"),
}


def sample_pdm_params(trial: optuna.Trial) -> dict[str, Any]:
    """
    Sample PDM's options (``pdm_kwargs`` of the policy) in ``trial``:

    - ``local_lr``: log-uniform in [1e-5, 3e-3] (default 3e-4);
    - ``guidance_coef``: uniform in [0, 4] (default 1; 0 turns guidance off);
    - ``feature_scale``: log-uniform in [0.1, 1] (default 0.25).

    Widths are not sampled here: the zoo's samplers already choose ``net_arch`` (PPO: 64, 64-64 or 256-256; A2C
    and TRPO: 64-64 or 256-256), and the PDM trunks are built with those widths.

    :param trial: Optuna trial.
    :return: ``pdm_kwargs`` for the policy.
    """
    return {
        "local_lr": trial.suggest_float(f"{PREFIX}local_lr", 1e-5, 3e-3, log=True),
        "guidance_coef": trial.suggest_float(f"{PREFIX}guidance_coef", 0.0, 4.0),
        "feature_scale": trial.suggest_float(f"{PREFIX}feature_scale", 0.1, 1.0, log=True),
    }


def study_policy(study: optuna.Study) -> type | None:
    """
    The policy class of the zoo's hyperparameter search, read from the study's user attributes (the zoo stores
    every default hyperparameter there, ``str()``-formatted, before the first trial), or ``None`` when it is not
    a class (e.g. ``'MlpPolicy'``) or unknown.

    :param study: The Optuna study.
    """
    name = re.fullmatch(r"<class '([\w.]+)'>", str(study.user_attrs.get("policy", "")))
    if name is None:
        return None
    try:
        return get_class_by_name(name.group(1))
    except (ImportError, AttributeError):
        return None


def is_pdm_policy(policy: Any) -> bool:
    """Whether ``policy`` is a PDM policy class (:class:`sb3_pdm.PDMPolicy`, its subclasses, ``MaskablePDMPolicy``)."""
    return isinstance(policy, type) and issubclass(policy, PDMActorCriticMixin)


def pdm_sampler(algo_sampler: Sampler) -> Sampler:
    """
    Wrap one of the zoo's samplers: it samples the algorithm's hyperparameters as before and, when the study's
    policy is a PDM policy, adds ``pdm_kwargs`` (:func:`sample_pdm_params`) to the sampled ``policy_kwargs``.

    As with the zoo's own samplers, the sampled ``policy_kwargs`` replace those of the hyperparameter file:
    options a trial does not sample take :class:`sb3_pdm.PDMConfig`'s defaults.

    :param algo_sampler: The zoo's sampler for the algorithm.
    :return: The wrapped sampler (wrapping it again returns it unchanged).
    """
    if getattr(algo_sampler, "_pdm_wrapped", False):
        return algo_sampler

    def sampler(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
        hyperparams = algo_sampler(trial, n_actions, n_envs, additional_args)
        study = getattr(trial, "study", None)  # optuna's FixedTrial has none
        if study is not None and is_pdm_policy(study_policy(study)):
            hyperparams["policy_kwargs"] = dict(hyperparams.get("policy_kwargs") or {}, pdm_kwargs=sample_pdm_params(trial))
        return hyperparams

    sampler._pdm_wrapped = True  # type: ignore[attr-defined]
    sampler.__doc__ = f"{algo_sampler.__name__}, plus PDM's options for PDM policies (sb3_pdm.zoo.pdm_sampler)."
    return sampler


def pdm_converter(algo_converter: Converter) -> Converter:
    """
    Wrap one of the zoo's converters (Optuna parameters of a finished trial -> hyperparameters): the ``pdm_*``
    parameters become ``policy_kwargs["pdm_kwargs"]``, the others go through the zoo's converter.

    :param algo_converter: The zoo's converter for the algorithm.
    :return: The wrapped converter (wrapping it again returns it unchanged).
    """
    if getattr(algo_converter, "_pdm_wrapped", False):
        return algo_converter

    def converter(sampled_params: dict[str, Any]) -> dict[str, Any]:
        pdm_kwargs = {key[len(PREFIX) :]: value for key, value in sampled_params.items() if key.startswith(PREFIX)}
        hyperparams = algo_converter({key: value for key, value in sampled_params.items() if not key.startswith(PREFIX)})
        if pdm_kwargs:
            hyperparams["policy_kwargs"] = dict(hyperparams.get("policy_kwargs") or {}, pdm_kwargs=pdm_kwargs)
        return hyperparams

    converter._pdm_wrapped = True  # type: ignore[attr-defined]
    return converter


def register() -> None:
    """
    Register ``maskable_ppo`` and the PDM search in rl_zoo3's tables (``ALGOS``, ``HYPERPARAMS_SAMPLER``,
    ``HYPERPARAMS_CONVERTER``) of this process. Idempotent.
    """
    samplers, converters = hyperparams_opt.HYPERPARAMS_SAMPLER, hyperparams_opt.HYPERPARAMS_CONVERTER
    if "maskable_ppo" not in ALGOS:
        ALGOS["maskable_ppo"] = MaskablePPO
    samplers.setdefault("maskable_ppo", hyperparams_opt.sample_ppo_params)
    converters.setdefault("maskable_ppo", hyperparams_opt.convert_onpolicy_params)
    for algo in PDM_ALGOS:
        if algo in samplers:
            samplers[algo] = pdm_sampler(samplers[algo])
        if algo in converters:
            converters[algo] = pdm_converter(converters[algo])


def main(argv: list[str] | None = None) -> None:
    """
    Entry point: ``python -m sb3_pdm.zoo SCRIPT [ARGS]`` (or ``sb3-pdm-zoo SCRIPT [ARGS]``), where ``SCRIPT`` is
    ``train``, ``enjoy``, ``plot_train``, ``plot_from_file`` or ``all_plots`` and ``ARGS`` are that rl_zoo3
    script's arguments.

    :param argv: Arguments (default: ``sys.argv[1:]``).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in _SCRIPTS:
        print(f"usage: python -m sb3_pdm.zoo {{{','.join(_SCRIPTS)}}} [arguments of that rl_zoo3 script]", file=sys.stderr)
        raise SystemExit(2)
    register()
    module_name, function_name = _SCRIPTS[argv[0]]
    # Imported on demand, as the zoo's plotting modules pull in rliable (and arch), which train/enjoy do not need.
    script = getattr(importlib.import_module(module_name), function_name)
    # The scripts parse sys.argv, as under the rl_zoo3 command.
    sys.argv = [f"{sys.argv[0]} {argv[0]}", *argv[1:]]
    script()


if __name__ == "__main__":
    main()

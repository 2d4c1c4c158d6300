"""
RL-Zoo with PDM policies: runs rl_zoo3's scripts after registering, in this process only (no zoo file changes):

- the ``maskable_ppo`` algorithm key (sb3-contrib's ``MaskablePPO``) when ``rl_zoo3.utils.ALGOS`` lacks it, with the
  zoo's PPO sampler for ``-optimize``;
- an Optuna search over PDM's options next to the algorithm's own, for the on-policy algorithms (``ppo``, ``a2c``,
  ``trpo``, ``maskable_ppo``): :func:`pdm_sampler` wraps each of the zoo's samplers in
  ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER``, and :func:`pdm_converter` its converters (used to load a trial
  with ``--storage``/``--study-name``/``--trial-id``).

``python -m sb3_pdm.zoo report`` (:func:`report`) exports a study's trials, parameter importances and summary.

Usage, with the arguments of ``python -m rl_zoo3.train`` (``enjoy``, ``plot_train``, ``plot_from_file`` and
``all_plots`` work too, as with the ``rl_zoo3`` command)::

    python -m sb3_pdm.zoo train --algo ppo --env CartPole-v1 --conf-file hyperparams/ppo.yml
    python -m sb3_pdm.zoo train --algo ppo --env CartPole-v1 --conf-file hyperparams/ppo.yml -optimize --n-trials 20 \\
        --storage study.log --study-name pdm-ppo-CartPole-v1
    python -m sb3_pdm.zoo report --storage study.log --study-name pdm-ppo-CartPole-v1 --out tuning/

Plain training needs none of this: ``python -m rl_zoo3.train --conf-file hyperparams/ppo.yml`` imports the PDM
policy and callback by name. See ``docs/zoo.md``.
"""

import argparse
import csv
import functools
import importlib
import re
import sys
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import optuna
from rl_zoo3 import hyperparams_opt
from rl_zoo3.exp_manager import ExperimentManager
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
#: Sampled PDM options that are keyword arguments of the policy, not of :class:`sb3_pdm.PDMConfig`.
POLICY_OPTIONS = ("value_norm_rate",)
#: Choices of ``max_feature_move`` (``None``: no trust region).
MAX_FEATURE_MOVES = (None, 0.05, 0.1, 0.2, 0.5)
#: Choices of ``local_epochs`` (``None``: the layers step on every pass over a rollout).
LOCAL_EPOCHS = (None, 1, 2, 5, 10)
#: Choices of ``value_norm_rate`` (``None``: the plain value head).
VALUE_NORM_RATES = (None, 0.001, 0.01, 0.1)

#: The policy of the zoo objective running in this context (see :func:`trial_policy`).
_POLICY: ContextVar[Any] = ContextVar("sb3_pdm_zoo_policy", default=None)

#: rl_zoo3's scripts, as the ``rl_zoo3`` command names them: (module, function).
_SCRIPTS = {
    "train": ("rl_zoo3.train", "train"),
    "enjoy": ("rl_zoo3.enjoy", "enjoy"),
    "plot_train": ("rl_zoo3.plots.plot_train", "plot_train"),
    "plot_from_file": ("rl_zoo3.plots.plot_from_file", "plot_from_file"),
    "all_plots": ("rl_zoo3.plots.all_plots", "all_plots"),
}


def sample_pdm_params(trial: optuna.Trial, epochs: bool = False, trust_region: bool = True) -> dict[str, Any]:
    """
    Sample PDM's options in ``trial``, as Optuna parameters named ``pdm_<option>``:

    - ``local_lr``: log-uniform in [1e-5, 3e-3] (default 3e-4);
    - ``guidance_coef``: uniform in [0, 4] (default 1; 0 turns guidance off);
    - ``feature_scale``: log-uniform in [0.1, 1] (default 0.25);
    - ``max_feature_move`` (only with ``trust_region``, for algorithms whose layers take several local steps per
      rollout): one of :data:`MAX_FEATURE_MOVES` (default 0.1; ``None``: no trust region);
    - ``local_epochs`` (only with ``epochs``, for algorithms with several passes over a rollout): one of
      :data:`LOCAL_EPOCHS` (default 5; ``None``: every pass);
    - ``value_norm_rate``, a keyword argument of the policy: one of :data:`VALUE_NORM_RATES` (default 0.01;
      ``None``: the plain value head).

    Widths are not sampled here: the zoo's samplers already choose ``net_arch`` (PPO: 64, 64-64 or 256-256; A2C
    and TRPO: 64-64 or 256-256) and ``activation_fn`` (tanh or ReLU), with which the PDM trunks are built.

    :param trial: Optuna trial.
    :param epochs: Whether to sample ``local_epochs``.
    :param trust_region: Whether to sample ``max_feature_move`` (a rollout's first local step is never skipped, so
        the trust region does not act on A2C's one step per rollout).
    :return: The policy's keyword arguments: ``pdm_kwargs`` and ``value_norm_rate``.
    """
    pdm_kwargs = {
        "local_lr": trial.suggest_float(f"{PREFIX}local_lr", 1e-5, 3e-3, log=True),
        "guidance_coef": trial.suggest_float(f"{PREFIX}guidance_coef", 0.0, 4.0),
        "feature_scale": trial.suggest_float(f"{PREFIX}feature_scale", 0.1, 1.0, log=True),
    }
    if trust_region:
        pdm_kwargs["max_feature_move"] = trial.suggest_categorical(f"{PREFIX}max_feature_move", MAX_FEATURE_MOVES)
    if epochs:
        pdm_kwargs["local_epochs"] = trial.suggest_categorical(f"{PREFIX}local_epochs", LOCAL_EPOCHS)
    value_norm_rate = trial.suggest_categorical(f"{PREFIX}value_norm_rate", VALUE_NORM_RATES)
    return {"pdm_kwargs": pdm_kwargs, "value_norm_rate": value_norm_rate}


def pdm_policy_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """
    The policy keyword arguments of the ``pdm_*`` Optuna parameters in ``params`` (others are ignored): those in
    :data:`POLICY_OPTIONS` as they are, the rest in ``pdm_kwargs``. The inverse of :func:`sample_pdm_params`.

    :param params: Optuna parameters of a trial (``trial.params``).
    :return: ``{"pdm_kwargs": {...}, "value_norm_rate": ...}`` (keys present only where sampled).
    """
    options = {key[len(PREFIX) :]: value for key, value in params.items() if key.startswith(PREFIX)}
    policy_kwargs = {key: options.pop(key) for key in POLICY_OPTIONS if key in options}
    if options:
        policy_kwargs["pdm_kwargs"] = options
    return policy_kwargs


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


def trial_policy(trial: optuna.Trial) -> Any:
    """
    The policy of the hyperparameter search that ``trial`` belongs to: in this process's zoo objective, the policy of
    its hyperparameters (set by :func:`register`'s wrapper of ``ExperimentManager.objective``), else the policy the
    zoo stored in the study's user attributes (:func:`study_policy`), else ``None``.

    :param trial: Optuna trial (a ``FixedTrial`` has no study).
    """
    policy = _POLICY.get()
    if policy is not None:
        return policy
    study = getattr(trial, "study", None)
    return None if study is None else study_policy(study)


def pdm_sampler(algo_sampler: Sampler) -> Sampler:
    """
    Wrap one of the zoo's samplers: it samples the algorithm's hyperparameters as before and, when the search's
    policy is a PDM policy (:func:`trial_policy`), adds the PDM options (:func:`sample_pdm_params`; ``local_epochs``
    where the algorithm samples ``n_epochs``, ``max_feature_move`` where it samples ``n_epochs`` or
    ``n_critic_updates``: not for A2C) to the sampled ``policy_kwargs``.

    As with the zoo's own samplers, the sampled ``policy_kwargs`` replace those of the hyperparameter file:
    options a trial does not sample take their defaults (:class:`sb3_pdm.PDMConfig`, :class:`sb3_pdm.PDMPolicy`).

    :param algo_sampler: The zoo's sampler for the algorithm.
    :return: The wrapped sampler (wrapping it again returns it unchanged).
    """
    if getattr(algo_sampler, "_pdm_wrapped", False):
        return algo_sampler

    def sampler(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
        hyperparams = algo_sampler(trial, n_actions, n_envs, additional_args)
        if is_pdm_policy(trial_policy(trial)):
            # Several local steps per rollout: PPO's epochs and minibatches, TRPO's critic updates; A2C takes one.
            several = "n_epochs" in hyperparams or "n_critic_updates" in hyperparams
            pdm = sample_pdm_params(trial, epochs="n_epochs" in hyperparams, trust_region=several)
            hyperparams["policy_kwargs"] = dict(hyperparams.get("policy_kwargs") or {}, **pdm)
        return hyperparams

    sampler._pdm_wrapped = True  # type: ignore[attr-defined]
    sampler.__doc__ = f"{algo_sampler.__name__}, plus PDM's options for PDM policies (sb3_pdm.zoo.pdm_sampler)."
    return sampler


def pdm_converter(algo_converter: Converter) -> Converter:
    """
    Wrap one of the zoo's converters (Optuna parameters of a finished trial -> hyperparameters): the ``pdm_*``
    parameters become policy keyword arguments (:func:`pdm_policy_kwargs`), the others go through the zoo's converter.

    :param algo_converter: The zoo's converter for the algorithm.
    :return: The wrapped converter (wrapping it again returns it unchanged).
    """
    if getattr(algo_converter, "_pdm_wrapped", False):
        return algo_converter

    def converter(sampled_params: dict[str, Any]) -> dict[str, Any]:
        hyperparams = algo_converter({key: value for key, value in sampled_params.items() if not key.startswith(PREFIX)})
        pdm = pdm_policy_kwargs(sampled_params)
        if pdm:
            hyperparams["policy_kwargs"] = dict(hyperparams.get("policy_kwargs") or {}, **pdm)
        return hyperparams

    converter._pdm_wrapped = True  # type: ignore[attr-defined]
    return converter


def _objective_with_policy(objective: Callable[[ExperimentManager, optuna.Trial], float]) -> Callable:
    """Wrap ``ExperimentManager.objective`` so that the samplers it calls see its policy (:func:`trial_policy`)."""
    if getattr(objective, "_pdm_wrapped", False):
        return objective

    @functools.wraps(objective)
    def wrapped(self: ExperimentManager, trial: optuna.Trial) -> float:
        token = _POLICY.set(self._hyperparams.get("policy"))
        try:
            return objective(self, trial)
        finally:
            _POLICY.reset(token)

    wrapped._pdm_wrapped = True  # type: ignore[attr-defined]
    return wrapped


def register() -> None:
    """
    Register ``maskable_ppo`` and the PDM search in rl_zoo3's tables (``ALGOS``, ``HYPERPARAMS_SAMPLER``,
    ``HYPERPARAMS_CONVERTER``) of this process, and let the zoo's objective tell the samplers its policy (the study's
    user attributes, where the zoo also stores it, may not be written yet when several workers start one study).
    Idempotent.
    """
    samplers, converters = hyperparams_opt.HYPERPARAMS_SAMPLER, hyperparams_opt.HYPERPARAMS_CONVERTER
    ExperimentManager.objective = _objective_with_policy(ExperimentManager.objective)  # type: ignore[method-assign]
    if "maskable_ppo" not in ALGOS:
        ALGOS["maskable_ppo"] = MaskablePPO
    samplers.setdefault("maskable_ppo", hyperparams_opt.sample_ppo_params)
    converters.setdefault("maskable_ppo", hyperparams_opt.convert_onpolicy_params)
    for algo in PDM_ALGOS:
        if algo in samplers:
            samplers[algo] = pdm_sampler(samplers[algo])
        if algo in converters:
            converters[algo] = pdm_converter(converters[algo])


def open_storage(storage: str) -> str | optuna.storages.BaseStorage:
    """
    The Optuna storage ``storage`` names, as the zoo's ``--storage`` reads it: a path ending in ``.log`` is a journal
    file (``JournalStorage``, safe for several processes on one machine or a shared filesystem), anything else an
    RDB URL (``sqlite:///study.db``, ``postgresql://user:password@host/db``).

    :param storage: Path or URL.
    """
    if storage.endswith(".log"):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    return storage


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """
    Counts and times of ``study``'s trials: trials per state (``complete``, ``pruned``, ``fail``, ``running``, ...),
    the best value and trial number (``None`` before the first complete trial), ``trial_hours`` (summed duration of
    the finished trials: the compute the study cost, one worker at a time) and ``median_complete_s`` (median
    duration of a complete trial, in seconds).

    :param study: The Optuna study.
    """
    trials = study.get_trials(deepcopy=False)
    summary: dict[str, Any] = {state.name.lower(): 0 for state in optuna.trial.TrialState}
    for trial in trials:
        summary[trial.state.name.lower()] += 1
    durations = [trial.duration.total_seconds() for trial in trials if trial.duration is not None]
    finished = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    complete = sorted(trial.duration.total_seconds() for trial in finished if trial.duration is not None)
    best = max(finished, key=lambda trial: trial.value, default=None)
    summary.update(
        trials=len(trials),
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        trial_hours=sum(durations) / 3600,
        median_complete_s=None if not complete else complete[len(complete) // 2],
    )
    return summary


def param_importances(study: optuna.Study) -> dict[str, float]:
    """
    Optuna's ``get_param_importances`` of ``study`` (its default evaluator, on the complete trials), most important
    first; empty while fewer than two trials are complete.

    :param study: The Optuna study.
    """
    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        return {}
    return dict(optuna.importance.get_param_importances(study))


def export_study(study: optuna.Study, out: str | Path) -> dict[str, Path]:
    """
    Write ``study``'s trials and what they say into the folder ``out`` (created if needed):

    - ``<study>.csv``: every trial (``study.trials_dataframe()``: number, value, state, times, ``params_*``,
      ``user_attrs_*``);
    - ``<study>-importances.csv``: :func:`param_importances` (``param,importance``);
    - ``<study>.md``: :func:`study_summary` as a table, the best trial's parameters and the importances.

    :param study: The Optuna study.
    :param out: Output folder.
    :return: The written files, by kind (``trials``, ``importances``, ``summary``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        kind: out / f"{study.study_name}{suffix}"
        for kind, suffix in (("trials", ".csv"), ("importances", "-importances.csv"), ("summary", ".md"))
    }
    study.trials_dataframe().to_csv(paths["trials"], index=False)
    importances = param_importances(study)
    with open(paths["importances"], "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["param", "importance"])
        writer.writerows((name, f"{value:.4f}") for name, value in importances.items())
    paths["summary"].write_text(summary_markdown(study, importances))
    return paths


def summary_markdown(study: optuna.Study, importances: dict[str, float] | None = None) -> str:
    """
    ``study``'s summary (:func:`study_summary`), its best trial's parameters and ``importances`` (default:
    :func:`param_importances`) as Markdown.

    :param study: The Optuna study.
    :param importances: Parameter importances, most important first.
    """
    summary = study_summary(study)
    importances = param_importances(study) if importances is None else importances
    median = "-" if summary["median_complete_s"] is None else f"{summary['median_complete_s']:.0f}"
    best = "-" if summary["best_value"] is None else f"{summary['best_value']:.1f} (#{summary['best_trial']})"
    lines = [
        f"# {study.study_name}",
        "",
        "| trials | complete | pruned | failed | running | best (trial) | trial hours (summed) | median s, complete trial |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['trials']} | {summary['complete']} | {summary['pruned']} | {summary['fail']} | {summary['running']} "
        f"| {best} | {summary['trial_hours']:.2f} | {median} |",
    ]
    if summary["best_trial"] is not None:
        lines += ["", "Best trial's parameters:", ""]
        lines += [f"- `{name}`: {value!r}" for name, value in study.trials[summary["best_trial"]].params.items()]
    lines += ["", "Parameter importances (Optuna's default evaluator, complete trials):", ""]
    lines += [f"- `{name}`: {value:.3f}" for name, value in importances.items()] or ["- fewer than two complete trials"]
    return "\n".join(lines) + "\n"


def report(argv: list[str] | None = None) -> dict[str, Path]:
    """
    ``python -m sb3_pdm.zoo report --storage STORAGE --study-name NAME [--out FOLDER]``: export a study's trials,
    importances and summary (:func:`export_study`) and print the summary.

    :param argv: Arguments (default: ``sys.argv[1:]`` after ``report``).
    :return: The written files, by kind.
    """
    parser = argparse.ArgumentParser(prog="python -m sb3_pdm.zoo report", description=report.__doc__)
    parser.add_argument("--storage", required=True, help="the zoo's --storage: a journal file (*.log) or an RDB URL")
    parser.add_argument("--study-name", required=True)
    parser.add_argument("--out", default=".", help="output folder (default: the current one)")
    args = parser.parse_args(argv)
    study = optuna.load_study(study_name=args.study_name, storage=open_storage(args.storage))
    paths = export_study(study, args.out)
    print(paths["summary"].read_text(), end="")
    return paths


def main(argv: list[str] | None = None) -> None:
    """
    Entry point: ``python -m sb3_pdm.zoo SCRIPT [ARGS]`` (or ``sb3-pdm-zoo SCRIPT [ARGS]``), where ``SCRIPT`` is
    ``train``, ``enjoy``, ``plot_train``, ``plot_from_file`` or ``all_plots`` and ``ARGS`` are that rl_zoo3
    script's arguments; or ``python -m sb3_pdm.zoo report ARGS`` (:func:`report`).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "report":
        report(argv[1:])
        return
    if not argv or argv[0] not in _SCRIPTS:
        print(
            f"usage: python -m sb3_pdm.zoo {{{','.join(_SCRIPTS)}}} [arguments of that rl_zoo3 script]\n"
            "       python -m sb3_pdm.zoo report --storage STORAGE --study-name NAME [--out FOLDER]",
            file=sys.stderr,
        )
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

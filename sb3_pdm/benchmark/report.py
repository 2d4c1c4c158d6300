"""Aggregate benchmark runs: ``summary.json``, ``summary.md`` and learning-curve plots, generated from the runs."""

import glob
import json
import os
from collections import defaultdict
from typing import Any

import numpy as np
from scipy import stats

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
#: The targets of ``pdm`` (PDM's defaults) against stock SB3: IQM ratio at least, wall-clock ratio at most.
TARGET_IQM_RATIO, TARGET_TIME_RATIO = 0.9, 1.5
#: The envs where PDM's IQM interval must lie above the frozen control's (issue 4: Acrobot cannot tell them apart).
CONTROL_TARGET_ENVS = ("CartPole-v1", "LunarLander-v3")


def load_runs(runs_dir: str) -> list[dict[str, Any]]:
    """Every finished run (an ``evaluations.json``) under ``runs_dir``."""
    records = []
    for path in sorted(glob.glob(os.path.join(runs_dir, "**", "evaluations.json"), recursive=True)):
        with open(path) as file:
            records.append(json.load(file))
    return records


def iqm_with_ci(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """
    Interquartile mean (the 25%-trimmed mean, as rliable's ``aggregate_iqm``) of final returns and its 95%
    percentile-bootstrap CI over runs (rliable's stratified bootstrap for a single task). With one run the CI is
    that run's value.
    """
    scores = np.asarray(scores, dtype=float)
    iqm = float(stats.trim_mean(scores, 0.25))
    if len(scores) < 2 or np.all(scores == scores[0]):
        return iqm, iqm, iqm
    result = stats.bootstrap(
        (scores,),
        lambda x, axis: stats.trim_mean(x, 0.25, axis=axis),
        n_resamples=reps,
        method="percentile",
        random_state=seed,
    )
    return iqm, float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    One row per env x algo x method: final-return statistics, the mean of all evaluations, stability (drop from
    each run's best evaluation) and wall-clock.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        spec = record["spec"]
        groups[(spec["env"], spec["algo"], spec["method"])].append(record)
    rows = []
    for (env, algo, method), runs in sorted(groups.items()):
        finals = np.array([run["final"] for run in runs])
        iqm, low, high = iqm_with_ci(finals)
        rows.append(
            dict(
                env=env,
                algo=algo,
                method=method,
                n_seeds=len(runs),
                budget=max(run["budget"] for run in runs),
                mean=float(finals.mean()),
                std=float(finals.std()),
                iqm=iqm,
                iqm_ci_low=low,
                iqm_ci_high=high,
                # The mean of each run's evaluations (the area under its learning curve, per evaluation): learning
                # speed and what the run held, where the final return is one point.
                eval_mean=float(np.mean([np.mean([r["mean"] for r in run["curve"]]) for run in runs])),
                # Within-run stability: how far each run ends below its own best evaluation.
                drop_from_best=float(np.mean([max(r["mean"] for r in run["curve"]) - run["final"] for run in runs])),
                sec_per_1k_steps=float(np.mean([run["sec_per_1k_steps"] for run in runs])),
            )
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """Results table, with PDM-variant / backprop ratios of IQM, across-seed std and wall-clock."""
    reference = {(r["env"], r["algo"]): r for r in rows if r["method"] == "backprop"}
    lines = [
        "| env | algo | method | seeds | budget | final mean ± std | IQM [95% CI] | IQM / BP | std / BP "
        "| mean of evals | drop from best | s / 1k steps | time / BP |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ratio(a: float, b: float) -> str:
        # A ratio to a non-positive reference (e.g. negative returns) has no meaning.
        return f"{a / b:.2f}" if b > 0 else "n/a"

    for row in rows:
        bp = reference.get((row["env"], row["algo"]))
        vs_bp = bp is not None and row["method"] != "backprop"
        lines.append(
            f"| {row['env']} | {row['algo']} | {row['method']} | {row['n_seeds']} | {row['budget']:,} "
            f"| {row['mean']:.1f} ± {row['std']:.1f} | {row['iqm']:.1f} [{row['iqm_ci_low']:.1f}, {row['iqm_ci_high']:.1f}] "
            f"| {ratio(row['iqm'], bp['iqm']) if vs_bp else ''} | {ratio(row['std'], bp['std']) if vs_bp else ''} "
            f"| {row['eval_mean']:.1f} | {row['drop_from_best']:.1f} | {row['sec_per_1k_steps']:.2f} "
            f"| {ratio(row['sec_per_1k_steps'], bp['sec_per_1k_steps']) if vs_bp else ''} |"
        )
    return "\n".join(lines) + "\n"


def _fmt_ratio(value: float, limit: float, at_most: bool) -> str:
    met = value <= limit if at_most else value >= limit
    # A third decimal where two would show the limit itself (1.502 is not <= 1.5).
    digits = 3 if round(value, 2) == limit else 2
    return f"{'met' if met else 'missed'}: {value:.{digits}f} x"


def _separation(pdm: dict[str, Any], control: dict[str, Any] | None, verdicts: tuple[str, str] = ("met", "missed")) -> str:
    """Whether ``pdm``'s IQM confidence interval lies above ``control``'s (``verdicts``: yes, no), with the numbers."""
    yes, no = verdicts
    if control is None:
        return "no control run"
    if pdm["iqm_ci_low"] > control["iqm_ci_high"]:
        return f"{yes}: {pdm['iqm_ci_low']:.1f} > {control['iqm_ci_high']:.1f}"
    if pdm["iqm"] < control["iqm"]:
        return f"{no}: IQM below the control's ({pdm['iqm']:.1f} against {control['iqm']:.1f})"
    return (
        f"{no}: [{pdm['iqm_ci_low']:.1f}, {pdm['iqm_ci_high']:.1f}] overlaps "
        f"[{control['iqm_ci_low']:.1f}, {control['iqm_ci_high']:.1f}]"
    )


def targets(
    rows: list[dict[str, Any]],
    method: str = "pdm",
    control: str = "frozen",
    stronger_control: str | None = "frozen-hnorm",
    control_envs: tuple[str, ...] | None = None,
) -> str:
    """
    The targets of PDM's defaults, per env x algo where both ``backprop`` and ``method`` were run: IQM at least 0.9 x
    backprop's, an IQM confidence interval above the frozen control's, across-seed std at most backprop's (the target
    asks it on half of the settings), wall-clock at most 1.5 x backprop's. A last column, outside the targets, holds the
    same separation against a stronger control.

    :param rows: Summary rows (:func:`summarize`).
    :param method: The PDM method held to the targets.
    :param control: The frozen-random-features control of the targets.
    :param stronger_control: A second control (default: frozen features read by standardised heads), shown beside
        the targets; ``None`` leaves the column out.
    :param control_envs: The envs where the separation from ``control`` is a target (elsewhere it is shown as "not a
        target"); ``None``: every env.
    :return: A Markdown table, then a line counting the settings where the std target is met.
    """
    by_key = {(r["env"], r["algo"], r["method"]): r for r in rows}
    extra = [] if stronger_control is None else [f"not a target: IQM CI above the {stronger_control} control's"]
    header = [
        "setting",
        f"seeds ({method})",
        f"IQM >= {TARGET_IQM_RATIO} x backprop's",
        f"IQM CI above the {control} control's",
        "std <= backprop's",
        f"time <= {TARGET_TIME_RATIO} x backprop's",
        *extra,
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    n_settings = n_std_met = 0
    for env, algo in sorted({(r["env"], r["algo"]) for r in rows}):
        bp, pdm = by_key.get((env, algo, "backprop")), by_key.get((env, algo, method))
        if bp is None or pdm is None:
            continue
        n_settings += 1
        if bp["iqm"] > 0:
            iqm = _fmt_ratio(pdm["iqm"] / bp["iqm"], TARGET_IQM_RATIO, at_most=False)
        else:
            # A ratio to a negative return has no meaning (Acrobot's returns are all negative): the IQMs side by side.
            iqm = f"no ratio (negative returns): {pdm['iqm']:.1f} against {bp['iqm']:.1f}"
        if control_envs is None or env in control_envs:
            separation = _separation(pdm, by_key.get((env, algo, control)))
        else:
            separation = "not a target: " + _separation(pdm, by_key.get((env, algo, control)), ("above", "not above"))
        if bp["std"] > 0:
            std_met = pdm["std"] <= bp["std"]
            std = _fmt_ratio(pdm["std"] / bp["std"], 1.0, at_most=True)
        else:
            std_met = pdm["std"] == 0
            std = f"{'met' if std_met else 'missed'}: backprop's std is 0, PDM's {pdm['std']:.1f}"
        n_std_met += std_met
        time_ratio = _fmt_ratio(pdm["sec_per_1k_steps"] / bp["sec_per_1k_steps"], TARGET_TIME_RATIO, at_most=True)
        cells = [f"{env} {algo} {bp['budget']:,}", str(pdm["n_seeds"]), iqm, separation, std, time_ratio]
        if stronger_control is not None:
            cells.append(_separation(pdm, by_key.get((env, algo, stronger_control)), ("above", "not above")))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\nStd target: met on {n_std_met} of {n_settings} settings (asked: at least half).")
    return "\n".join(lines) + "\n"


#: A setting with more methods than this is plotted with :data:`PLOTTED_METHODS` only (the tables keep every method).
MAX_PLOTTED_METHODS = 6
#: The methods kept in a crowded plot: stock SB3, PDM's defaults, their control, and the control whose heads read
#: standardised random features.
PLOTTED_METHODS = ("backprop", "pdm", "frozen", "frozen-hnorm")


def plotted_methods(methods: list[str]) -> list[str]:
    """The methods of one setting that its plot shows: all of them, or those of :data:`PLOTTED_METHODS` when crowded."""
    if len(methods) <= MAX_PLOTTED_METHODS:
        return sorted(methods)
    return [method for method in PLOTTED_METHODS if method in methods]


def plot_curves(records: list[dict[str, Any]], out_dir: str) -> list[str]:
    """
    One PNG per env x algo: mean evaluation return over timesteps per method, with a 95% band over seeds. A setting
    with more than :data:`MAX_PLOTTED_METHODS` methods shows those of :data:`PLOTTED_METHODS` only.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        spec = record["spec"]
        groups[(spec["env"], spec["algo"])][spec["method"]].append(record["curve"])
    paths = []
    for (env, algo), methods in sorted(groups.items()):
        shown = plotted_methods(list(methods))
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in shown:
            curves = methods[method]
            length = min(len(c) for c in curves)
            steps = np.array([row["timesteps"] for row in curves[0][:length]])
            values = np.array([[row["mean"] for row in c[:length]] for c in curves])
            mean = values.mean(axis=0)
            half = 1.96 * values.std(axis=0) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
            ax.plot(steps, mean, label=f"{method} ({len(curves)} seeds)")
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
        title = f"{algo.upper()} on {env}"
        if len(shown) < len(methods):
            title += f" ({len(shown)} of {len(methods)} methods)"
        ax.set(title=title, xlabel="timesteps", ylabel="evaluation return")
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = os.path.join(out_dir, f"curves_{env}_{algo}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def replace_readme_section(readme: str, start: str, end: str, body: str) -> None:
    """
    Replace what lies between the markers ``start`` and ``end`` of a README with ``body`` (generated results).

    :param readme: Path of the README.
    :param start: Opening marker (an HTML comment).
    :param end: Closing marker.
    :param body: New content.
    """
    with open(readme) as file:
        text = file.read()
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no '{start}' ... '{end}' section to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(readme, "w") as file:
        file.write(f"{head}{start}\n{body}{end}{tail}")


def write_report(runs_dir: str, out_dir: str, readme: str | None = None) -> list[dict[str, Any]]:
    """
    Write ``summary.json``, ``summary.md`` (results and targets tables) and the plots into ``out_dir`` from the runs in
    ``runs_dir``; optionally replace the results section of ``readme`` (between its ``results`` markers) with the
    tables.

    :return: The summary rows.
    """
    records = load_runs(runs_dir)
    rows = summarize(records)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "summary.json"), "w") as file:
        json.dump(rows, file, indent=1)
    table = (
        markdown(rows)
        + "\n**Targets** (`pdm`, the defaults; generated from the rows above)\n\n"
        + targets(rows, control_envs=CONTROL_TARGET_ENVS)
    )
    plots = plot_curves(records, out_dir)
    body = table + "\n" + "\n".join(f"![{os.path.basename(p)}]({os.path.relpath(p, out_dir)})" for p in plots) + "\n"
    with open(os.path.join(out_dir, "summary.md"), "w") as file:
        file.write(
            "# Benchmark results\n\nGenerated by `python -m sb3_pdm.benchmark` from the runs in this folder.\n\n" + body
        )
    if readme is not None:
        root = os.path.dirname(os.path.abspath(readme))
        images = "\n".join(f"![{os.path.basename(p)}]({os.path.relpath(p, root)})" for p in plots)
        replace_readme_section(readme, README_START, README_END, f"{table}\n{images}\n")
    return rows

"""Aggregate benchmark runs: ``summary.json``, ``summary.md`` and learning-curve plots, generated from the runs."""

import argparse
import glob
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
TARGETS_START, TARGETS_END = "<!-- targets:start -->", "<!-- targets:end -->"
#: Fewest seeds with an across-seed spread (std), and with a bootstrap interval of the IQM.
MIN_SEEDS_SPREAD, MIN_SEEDS_CI = 2, 3
#: The lowest return of each env, where known: IQM ratios are taken on returns shifted so that it is 0, so
#: that negative returns have a ratio; elsewhere on the raw returns, where the reference's IQM is positive.
RETURN_FLOORS = {"CartPole-v1": 0.0, "Acrobot-v1": -500.0, "LunarLander-v3": -300.0}


@dataclass(frozen=True)
class Target:
    """
    A comparison held to targets in ``summary.md``: ``method``'s IQM at least ``iqm_ratio`` x ``reference``'s, its IQM
    interval above ``control``'s (where given), its across-seed std at most the reference's, its time per step at most
    ``time_ratio`` x the reference's.

    :param method: The method held to the targets.
    :param reference: The method it is compared with (stock SB3).
    :param control: Its frozen-random-features control, or ``None`` for no separation target.
    :param iqm_ratio: Lowest IQM ratio to the reference.
    :param time_ratio: Highest ratio of time per step to the reference's.
    :param shifted: Take IQM ratios on returns shifted by the env's floor (:func:`iqm_ratio`);
        ``False``: on the raw returns, as the first targets were stated.
    :param title: What the comparison is, above its table.
    """

    method: str
    reference: str
    control: str | None
    iqm_ratio: float
    time_ratio: float = 1.5
    shifted: bool = True
    title: str = ""


#: The targets tables: PDM's defaults with the zoo's values, each method with its own tuned values, both policies with
#: SB3's default algorithm hyperparameters. A table appears when its method and reference were run.
TARGETS = (
    Target(
        "pdm",
        "backprop",
        "frozen",
        0.9,
        shifted=False,
        title="`pdm`, the defaults, with the zoo's (backprop's) hyperparameters",
    ),
    Target("pdm-tuned", "backprop", "frozen-tuned", 0.95, title="each method with its own tuned hyperparameters"),
    Target("pdm-sb3defaults", "backprop-sb3defaults", None, 0.9, title="both with SB3's default hyperparameters"),
)
#: The envs where PDM's IQM interval must lie above the frozen control's (on Acrobot both end near the same return).
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
    percentile-bootstrap CI over runs (rliable's stratified bootstrap for a single task). With one run, or equal
    runs, the CI is the IQM itself (:func:`summarize` leaves it out below :data:`MIN_SEEDS_CI` runs).
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
    each run's best evaluation) and wall-clock. ``std`` is ``None`` below :data:`MIN_SEEDS_SPREAD` seeds, and the IQM
    interval (``iqm_ci_low``, ``iqm_ci_high``) below :data:`MIN_SEEDS_CI`: one seed has no spread.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        spec = record["spec"]
        groups[(spec["env"], spec["algo"], spec["method"])].append(record)
    rows = []
    for (env, algo, method), runs in sorted(groups.items()):
        finals = np.array([run["final"] for run in runs])
        iqm, low, high = iqm_with_ci(finals)
        with_ci = len(runs) >= MIN_SEEDS_CI
        rows.append(
            dict(
                env=env,
                algo=algo,
                method=method,
                n_seeds=len(runs),
                budget=max(run["budget"] for run in runs),
                mean=float(finals.mean()),
                std=float(finals.std()) if len(runs) >= MIN_SEEDS_SPREAD else None,
                iqm=iqm,
                iqm_ci_low=low if with_ci else None,
                iqm_ci_high=high if with_ci else None,
                # The mean of each run's evaluations (the area under its learning curve, per evaluation): learning
                # speed and what the run held, where the final return is one point.
                eval_mean=float(np.mean([np.mean([r["mean"] for r in run["curve"]]) for run in runs])),
                # Within-run stability: how far each run ends below its own best evaluation.
                drop_from_best=float(np.mean([max(r["mean"] for r in run["curve"]) - run["final"] for run in runs])),
                sec_per_1k_steps=float(np.mean([run["sec_per_1k_steps"] for run in runs])),
            )
        )
    return rows


def with_times(rows: list[dict[str, Any]], timing_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    ``rows`` with their ``sec_per_1k_steps`` taken from ``timing_rows`` of the same env x algo x method (``None`` where
    that was not timed): times measured side by side in one session, for results whose runs span several sessions.
    """
    times = {(r["env"], r["algo"], r["method"]): r["sec_per_1k_steps"] for r in timing_rows}
    return [dict(row, sec_per_1k_steps=times.get((row["env"], row["algo"], row["method"]))) for row in rows]


def _seconds(row: dict[str, Any]) -> str:
    return "n/a" if row["sec_per_1k_steps"] is None else f"{row['sec_per_1k_steps']:.2f}"


def _spread(row: dict[str, Any]) -> str:
    return "n/a" if row["std"] is None else f"{row['std']:.1f}"


def _interval(row: dict[str, Any]) -> str:
    return "n/a" if row["iqm_ci_low"] is None else f"{row['iqm_ci_low']:.1f}, {row['iqm_ci_high']:.1f}"


def format_row(row: dict[str, Any]) -> str:
    """One summary row as a line of text (the benchmark's console output)."""
    return (
        f"{row['env']:<16} {row['algo']:<4} {row['method']:<20} final return {row['mean']:8.1f} ± {_spread(row):>6} "
        f"(IQM {row['iqm']:.1f} [{_interval(row)}], {row['n_seeds']} seeds, {row['budget']:,} steps, "
        f"{row['sec_per_1k_steps']:.2f} s/1k steps)"
    )


def iqm_ratio(row: dict[str, Any], reference: dict[str, Any], shifted: bool = False) -> float | None:
    """
    ``row``'s IQM over ``reference``'s; with ``shifted``, on returns shifted by the env's floor (:data:`RETURN_FLOORS`)
    where known. ``None`` where the reference's (shifted) IQM is not positive: such a ratio has no meaning.
    """
    floor = RETURN_FLOORS.get(row["env"], 0.0) if shifted else 0.0
    base = reference["iqm"] - floor
    return (row["iqm"] - floor) / base if base > 0 else None


#: Columns of the results table (``summary.md``).
COLUMNS = (
    "env", "algo", "method", "hyperparameters", "seeds", "budget", "final mean ± std", "IQM [95% CI]", "IQM / BP",
    "std / BP", "mean of evals", "drop from best", "s / 1k steps", "time / BP",
)  # fmt: skip


def hyperparameters_of(method: str) -> str:
    """
    Whose hyperparameters a method's runs use (see ``runner.METHODS``): ``zoo`` (RL-Zoo's, tuned for backprop),
    ``PDM-tuned`` (this project's ``hyperparams/``) or ``SB3 defaults``.
    """
    if method.endswith("-sb3defaults"):
        return "SB3 defaults"
    if method.endswith("-tuned"):
        return "PDM-tuned"
    return "zoo"


def markdown(rows: list[dict[str, Any]]) -> str:
    """
    Results table, with the ratios of each method to backprop (IQM, across-seed std, wall-clock; "n/a" where backprop's
    is not positive); a ``sb3defaults`` method is compared with ``backprop-sb3defaults``.

    :param rows: Summary rows (:func:`summarize`).
    """
    reference = {(r["env"], r["algo"], r["method"]): r for r in rows}

    def ratio(a: float | None, b: float | None) -> str:
        # A ratio to a non-positive reference (e.g. negative returns) has no meaning.
        return f"{a / b:.2f}" if a is not None and b is not None and b > 0 else "n/a"

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        bp_name = "backprop-sb3defaults" if row["method"].endswith("-sb3defaults") else "backprop"
        bp = reference.get((row["env"], row["algo"], bp_name))
        vs_bp = bp is not None and row["method"] != bp_name
        iqm_vs_bp = iqm_ratio(row, bp) if vs_bp else None  # type: ignore[arg-type]
        cells = {
            "env": row["env"],
            "algo": row["algo"],
            "method": row["method"],
            "hyperparameters": hyperparameters_of(row["method"]),
            "seeds": str(row["n_seeds"]),
            "budget": f"{row['budget']:,}",
            "final mean ± std": f"{row['mean']:.1f} ± {_spread(row)}",
            "IQM [95% CI]": f"{row['iqm']:.1f} [{_interval(row)}]",
            "IQM / BP": ("n/a" if iqm_vs_bp is None else f"{iqm_vs_bp:.2f}") if vs_bp else "",
            "std / BP": ratio(row["std"], bp["std"]) if vs_bp else "",
            "mean of evals": f"{row['eval_mean']:.1f}",
            "drop from best": f"{row['drop_from_best']:.1f}",
            "s / 1k steps": f"{row['sec_per_1k_steps']:.2f}",
            "time / BP": ratio(row["sec_per_1k_steps"], bp["sec_per_1k_steps"]) if vs_bp else "",
        }
        lines.append("| " + " | ".join(cells[column] for column in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


#: The comparisons of the README's table, in its order: whose hyperparameters each side uses, and its methods.
COMPARISONS = (
    ("own tuned: backprop zoo, PDM `hyperparams/`", TARGETS[1]),
    ("both SB3 defaults", TARGETS[2]),
    ("both zoo (PDM's options at defaults)", TARGETS[0]),
)


def _cell(row: dict[str, Any] | None) -> str:
    return "-" if row is None else f"{row['iqm']:.1f} [{_interval(row)}] ({row['n_seeds']})"


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """
    The README's table: per setting (env x algo x budget), one line per comparison of :data:`COMPARISONS` that was
    run, with backprop's and PDM's IQM [95% CI] (seeds) side by side, the frozen control's where run, PDM's IQM ratio
    to backprop on returns shifted by the env's floor (:func:`iqm_ratio`), and both sides' across-seed std and
    seconds per 1k training steps.

    :param rows: Summary rows (:func:`summarize`).
    """
    by_key = {(r["env"], r["algo"], r["method"]): r for r in rows}
    header = (
        "setting", "hyperparameters", "backprop IQM [95% CI] (seeds)", "PDM IQM [95% CI] (seeds)", "frozen control",
        "PDM / BP", "std BP, PDM", "s / 1k steps BP, PDM",
    )  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for env, algo in sorted({(r["env"], r["algo"]) for r in rows}):
        setting = f"{env} {algo.upper()}"
        for label, target in COMPARISONS:
            ref, pdm = by_key.get((env, algo, target.reference)), by_key.get((env, algo, target.method))
            if ref is None or pdm is None:
                continue
            control = by_key.get((env, algo, target.control)) if target.control else None
            ratio = iqm_ratio(pdm, ref, shifted=True)
            cells = (
                f"{setting} {ref['budget']:,}",
                label,
                _cell(ref),
                _cell(pdm),
                _cell(control),
                "n/a" if ratio is None else f"{ratio:.2f}",
                f"{_spread(ref)}, {_spread(pdm)}",
                f"{_seconds(ref)}, {_seconds(pdm)}",
            )
            lines.append("| " + " | ".join(cells) + " |")
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
    if pdm["iqm_ci_low"] is None or control["iqm_ci_low"] is None:
        return f"n/a: no interval below {MIN_SEEDS_CI} seeds"
    if pdm["iqm_ci_low"] > control["iqm_ci_high"]:
        return f"{yes}: {pdm['iqm_ci_low']:.1f} > {control['iqm_ci_high']:.1f}"
    if pdm["iqm"] < control["iqm"]:
        return f"{no}: IQM below the control's ({pdm['iqm']:.1f} against {control['iqm']:.1f})"
    return f"{no}: [{_interval(pdm)}] overlaps [{_interval(control)}]"


def targets(rows: list[dict[str, Any]], target: Target = TARGETS[0], control_envs: tuple[str, ...] | None = None) -> str:
    """
    The targets of ``target.method`` per env x algo where it and its reference were run: IQM at least
    ``target.iqm_ratio`` x the reference's (:func:`iqm_ratio`, the IQMs themselves beside it), an IQM
    interval above the control's, across-seed std at most the reference's (asked on half of the settings; "n/a" below
    :data:`MIN_SEEDS_SPREAD` seeds, and then not counted), time per step at most ``target.time_ratio`` x the
    reference's.

    :param rows: Summary rows (:func:`summarize`).
    :param target: The comparison.
    :param control_envs: The envs where the separation from the control is a target (elsewhere it is shown as "not a
        target"); ``None``: every env.
    :return: A Markdown table, then a line counting the settings where the std target is met.
    """
    by_key = {(r["env"], r["algo"], r["method"]): r for r in rows}
    ref_name = target.reference
    header = [
        "setting",
        f"seeds ({target.method})",
        f"IQM >= {target.iqm_ratio} x {ref_name}'s",
        *([f"IQM CI above {target.control}'s"] if target.control else []),
        f"std <= {ref_name}'s",
        f"time <= {target.time_ratio} x {ref_name}'s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    n_settings = n_std_met = 0
    for env, algo in sorted({(r["env"], r["algo"]) for r in rows}):
        ref, pdm = by_key.get((env, algo, ref_name)), by_key.get((env, algo, target.method))
        if ref is None or pdm is None:
            continue
        ratio = iqm_ratio(pdm, ref, target.shifted)
        raw = f"({pdm['iqm']:.1f} against {ref['iqm']:.1f})"
        iqm = "no ratio: " + raw if ratio is None else f"{_fmt_ratio(ratio, target.iqm_ratio, at_most=False)} {raw}"
        cells = [f"{env} {algo} {ref['budget']:,}", str(pdm["n_seeds"]), iqm]
        if target.control:
            control = by_key.get((env, algo, target.control))
            if control_envs is None or env in control_envs:
                cells.append(_separation(pdm, control))
            else:
                cells.append("not a target: " + _separation(pdm, control, ("above", "not above")))
        if pdm["std"] is None or ref["std"] is None:
            std = f"n/a: no spread below {MIN_SEEDS_SPREAD} seeds"
        else:
            n_settings += 1
            if ref["std"] > 0:
                std_met = pdm["std"] <= ref["std"]
                std = _fmt_ratio(pdm["std"] / ref["std"], 1.0, at_most=True)
            else:
                std_met = pdm["std"] == 0
                std = f"{'met' if std_met else 'missed'}: {ref_name}'s std is 0, {target.method}'s {pdm['std']:.1f}"
            n_std_met += std_met
        cells.append(std)
        if pdm["sec_per_1k_steps"] is None or ref["sec_per_1k_steps"] is None:
            cells.append("n/a: not timed")
        else:
            cells.append(_fmt_ratio(pdm["sec_per_1k_steps"] / ref["sec_per_1k_steps"], target.time_ratio, at_most=True))
        lines.append("| " + " | ".join(cells) + " |")
    if n_settings:
        lines.append(f"\nStd target: met on {n_std_met} of {n_settings} settings (asked: at least half).")
    else:
        lines.append(f"\nStd target: n/a (no setting with {MIN_SEEDS_SPREAD} seeds of both).")
    return "\n".join(lines) + "\n"


def plot_curves(records: list[dict[str, Any]], out_dir: str) -> list[str]:
    """One PNG per env x algo: mean evaluation return over timesteps per method, with a 95% band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        spec = record["spec"]
        groups[(spec["env"], spec["algo"])][spec["method"]].append(record["curve"])
    paths = []
    for (env, algo), methods in sorted(groups.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in sorted(methods):
            curves = methods[method]
            length = min(len(c) for c in curves)
            steps = np.array([row["timesteps"] for row in curves[0][:length]])
            values = np.array([[row["mean"] for row in c[:length]] for c in curves])
            mean = values.mean(axis=0)
            half = 1.96 * values.std(axis=0) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
            ax.plot(steps, mean, label=f"{method} ({len(curves)} seeds)")
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
        ax.set(title=f"{algo.upper()} on {env}", xlabel="timesteps", ylabel="evaluation return")
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


def targets_tables(rows: list[dict[str, Any]], source: str = "the rows above") -> str:
    """
    The targets tables of :data:`TARGETS` whose method and reference were run, each under its title.

    :param rows: Summary rows (:func:`summarize`).
    :param source: Where the rows come from, named under each title.
    """
    methods = {row["method"] for row in rows}
    text = ""
    for target in TARGETS:
        if {target.method, target.reference} <= methods:
            text += f"\n**Targets**: {target.title} (generated from {source})\n\n"
            text += targets(rows, target, CONTROL_TARGET_ENVS if target.method == "pdm" else None)
    return text


def write_report(
    runs_dir: str, out_dir: str, readme: str | None = None, targets_doc: str | None = None, timing: str | None = None
) -> list[dict[str, Any]]:
    """
    Write ``summary.json``, ``summary.md`` (results and targets tables) and the plots into ``out_dir`` from the runs in
    ``runs_dir``; optionally replace the results section of ``readme`` (between its ``results`` markers) with the
    side-by-side table (:func:`comparison_table`), and the targets section of ``targets_doc`` (between its ``targets``
    markers) with the targets tables.

    :param timing: A results folder whose runs were timed side by side in one session: the targets tables and the
        README's table take their times per step from it (:func:`with_times`); ``summary.json`` and the results table
        keep each run's own.
    :return: The summary rows.
    """
    records = load_runs(runs_dir)
    rows = summarize(records)
    timed, times_from = rows, ""
    if timing is not None:
        timing_records = load_runs(os.path.join(timing, "runs"))
        if not timing_records:
            raise ValueError(f"timing: no runs in {os.path.join(timing, 'runs')}")
        timed, times_from = with_times(rows, summarize(timing_records)), f", times from `{timing}`"
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "summary.json"), "w") as file:
        json.dump(rows, file, indent=1)
    table = markdown(rows) + targets_tables(timed, "the rows above" + times_from)
    plots = plot_curves(records, out_dir)
    body = table + "\n" + "\n".join(f"![{os.path.basename(p)}]({os.path.relpath(p, out_dir)})" for p in plots) + "\n"
    with open(os.path.join(out_dir, "summary.md"), "w") as file:
        file.write(
            "# Benchmark results\n\nGenerated by `python -m sb3_pdm.benchmark` from the runs in this folder.\n\n" + body
        )
    if readme is not None:
        # A reader's page gets the side-by-side comparisons alone; every row, the targets and the plots stay in summary.md.
        replace_readme_section(readme, README_START, README_END, comparison_table(timed))
    if targets_doc is not None:
        body = targets_tables(timed, f"`{out_dir}`{times_from}").lstrip("\n")
        replace_readme_section(targets_doc, TARGETS_START, TARGETS_END, body)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Regenerate a results folder's summary (and a README's results section) from its runs, running nothing."""
    parser = argparse.ArgumentParser(prog="python -m sb3_pdm.benchmark.report", description=main.__doc__)
    parser.add_argument("--out", default="benchmarks/results", help="results folder (its runs are in OUT/runs)")
    parser.add_argument("--readme", default=None, help="also write the results table into this README's results section")
    parser.add_argument("--targets-doc", default=None, help="also write the targets tables into this page's targets section")
    parser.add_argument(
        "--timing", default=None, help="results folder timed side by side in one session: times per step for the tables"
    )
    args = parser.parse_args(argv)
    rows = write_report(os.path.join(args.out, "runs"), args.out, args.readme, args.targets_doc, args.timing)
    print(f"{len(rows)} rows: {os.path.join(args.out, 'summary.md')}")


if __name__ == "__main__":
    main()

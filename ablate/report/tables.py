"""Build a report's table (text cells plus numbers) from a spec and the sweep's results.

The table is format-neutral: :mod:`ablate.report.render` writes it as markdown, LaTeX, CSV or
HTML, and :mod:`ablate.report.plots` draws it. Every statistic is computed once per row
(:mod:`ablate.report.row_stats`):

* ours: mean ± sample std over seeds, and ``n`` (successful runs);
* delta: ours minus the paper's value;
* 95% CI: bootstrap over questions when per-question predictions exist (averaged over seeds),
  else over seeds (two or more), else none;
* p vs the reference row: exact McNemar when both rows have one run, a paired bootstrap over
  questions when either has several seeds;
* MDD and seeds needed: the smallest difference the comparison could detect at its seeds and the
  table's observed noise, and the seeds per row that would resolve the observed one
  (:mod:`ablate.report.power`).

Under the notes, every table carries a protocol footer (:mod:`ablate.report.protocol`).

A table holding any tiny-twin or synthetic-data result carries :data:`TINY_LABEL` in its title and
as its first note, and shows no delta against the paper, so such numbers are never presented as
comparable to the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ablate.report.collect import RowRuns, SweepResults
from ablate.report.power import SeedNoise, fmt_seeds, paper_power, pool_run_noise
from ablate.report.protocol import protocol_lines
from ablate.report.row_stats import RowStats, paired_test, row_power, row_stats, table_noise
from ablate.report.spec import ReportSpec, RowSpec
from ablate.report.speed import speed_cells, speed_headers, speed_notes, speed_record
from ablate.report.stats import Interval

TINY_LABEL = "tiny twins / synthetic data: not comparable to the paper"
DASH = "—"
TEST_MARK = {"mcnemar": "M", "paired-bootstrap": "B"}
CI_MARK = {"questions": "q", "seeds": "s", "seeds+questions": "q+s"}


@dataclass
class Table:
    """A rendered-to-be table.

    Attributes:
        name: short name (file stem of the outputs).
        title: caption.
        header: column headers.
        rows: text cells, one list per row, as wide as ``header``.
        numeric_columns: indices of columns aligned right.
        rule_after: row indices after which a horizontal rule is drawn.
        notes: lines printed under the table (the tiny label first when it applies).
        footer: the protocol lines printed after the notes (settings, environment, warnings).
        tiny: whether any result shown comes from tiny twins or synthetic data.
        records: one flat dict of numbers per (row, metric), for CSV and plots.
    """

    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    numeric_columns: set[int] = field(default_factory=set)
    rule_after: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    tiny: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)


def fmt(value: float | None, digits: int = 2) -> str:
    """A number with fixed decimals, or a dash for a missing one."""
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_mean(mean: float | None, std: float | None) -> str:
    """``mean ± std`` (just the mean for one run, a dash for none)."""
    if mean is None:
        return DASH
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)}"


def fmt_p(p: float) -> str:
    """A p-value with three decimals, or ``<0.001``."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ci_text(interval: Interval | None) -> str:
    if interval is None:
        return DASH
    return f"[{fmt(interval.low)}, {fmt(interval.high)}] ({CI_MARK[interval.method]})"


def _power_note(noise: SeedNoise | None, against: str, *, paired: bool = True) -> str:
    if noise is None and not paired:
        seen = "noise: every row has one seed, so seed noise is not observable and neither is shown"
    elif noise is None:
        seen = (
            "noise: every row has one seed, so seed noise is not observable: MDD from the "
            "per-question variance alone (McNemar's), seeds needed unknown (?)"
        )
    else:
        seen = (
            f"noise: run-to-run std {noise.run_std_pp:.2f} points, pooled over the rows with "
            f"two or more seeds ({noise.dof} degrees of freedom)"
        )
    return (
        f"MDD: at the row's seeds and the observed noise, the smallest true difference {against} "
        "that a two-sided test at alpha 0.05 finds with power 0.8; seeds: seeds per row that "
        "would resolve the observed difference (∞: none would, the noise that seeds do not "
        f"average out is already larger). {seen}."
    )


def _stat_notes(ref_name: str | None) -> list[str]:
    notes = [
        "ours: mean ± sample std over seeds; n: successful runs. "
        "95% CI: percentile bootstrap (2000 resamples) over questions (q), seeds (s) or both "
        "(q+s). unparsed %: answers without a parseable 'The answer is X.' (counted wrong)."
    ]
    if ref_name is not None:
        notes.append(
            f"p: two-sided, per-question correctness against the reference row ({ref_name}): "
            "(M) exact McNemar, (B) paired bootstrap over questions."
        )
    return notes


def _match_rows(spec: ReportSpec, results: SweepResults) -> list[tuple[RowSpec | None, RowRuns]]:
    """Pair spec rows with sweep rows (by label, else by axis values); extras go last."""
    used: set[str] = set()
    pairs: list[tuple[RowSpec | None, RowRuns]] = []
    for row_spec in spec.rows:
        found = None
        for row in results.rows:
            if row.key in used:
                continue
            if (
                row_spec.label is not None
                and row.label == row_spec.label
                or row_spec.match
                and all(row.axes.get(k) == v for k, v in row_spec.match.items())
            ):
                found = row
            if found is not None:
                break
        if found is None:
            found = RowRuns(key=row_spec.name, label=row_spec.label, axes=dict(row_spec.match))
        used.add(found.key)
        pairs.append((row_spec, found))
    pairs.extend((None, row) for row in results.rows if row.key not in used)
    return pairs


def build_rows_table(spec: ReportSpec, results: SweepResults) -> Table:
    """Tables 2 and 3: one row per ablation with paper value, ours, n, delta, CI and p."""
    tiny = results.tiny
    pairs = _match_rows(spec, results)
    stats = [row_stats(row, spec.metric) for _, row in pairs]
    ref_index = next(
        (i for i, (rs, _) in enumerate(pairs) if rs is not None and rs.name == spec.reference),
        None,
    )
    ours_head = "ours, tiny (mean ± std)" if tiny else "ours (mean ± std)"
    header = [*spec.cells, "paper", ours_head, "n", "Δ", "95% CI", "p vs ref", "MDD", "seeds"]
    unparsed_metric = _unparsed_metric(spec.metric)
    show_unparsed = any(row.values(unparsed_metric) for _, row in pairs)
    if show_unparsed:
        header.append("unparsed %")
    header += speed_headers(spec.speed)
    if not spec.cells:
        header.insert(0, "run")
    width = len(spec.cells) or 1
    table = Table(
        name=spec.name,
        title=_title(spec.title, tiny),
        header=header,
        rows=[],
        numeric_columns=set(range(width, len(header))),
        tiny=tiny,
    )
    notes: list[str] = []
    noise = table_noise(stats)
    for i, ((row_spec, row), st) in enumerate(zip(pairs, stats, strict=False)):
        if ref_index is not None and i != ref_index and st.n:
            st.test = paired_test(st, stats[ref_index])
            st.power = row_power(st, stats[ref_index], noise)
        paper = row_spec.paper if row_spec is not None else None
        delta = None if (tiny or paper is None or st.mean is None) else st.mean - paper
        cells = list(row_spec.cells) if row_spec is not None and spec.cells else [row.key]
        if row_spec is None and spec.cells:
            cells = [row.key] + [""] * (width - 1)
        if i == ref_index:
            p_text = "ref"
        elif st.test is not None:
            p_text = f"{fmt_p(st.test.p_value)} ({TEST_MARK[st.test.method]})"
        else:
            p_text = DASH
        delta_text = "n/c" if tiny and paper is not None and st.mean is not None else fmt(delta)
        if delta is not None and delta > 0:
            delta_text = "+" + delta_text
        cells += [
            fmt(paper),
            fmt_mean(st.mean, st.std),
            str(st.n),
            delta_text,
            _ci_text(st.interval),
            p_text,
            "ref" if i == ref_index else fmt(st.power.mdd if st.power else None),
            "ref" if i == ref_index else (fmt_seeds(st.power) if st.power else DASH),
        ]
        if show_unparsed:
            unparsed = row.values(unparsed_metric)
            cells.append(fmt(sum(unparsed) / len(unparsed)) if unparsed else DASH)
        cells += speed_cells(row, spec.speed, DASH)
        table.rows.append(cells)
        if row.failed and not st.n:
            notes.append(
                f"{row.key}: {len(row.failed)} run(s) failed or were cancelled, none succeeded."
            )
        record = _record(spec, row, row_spec, st, paper, delta, tiny, spec.metric)
        table.records.append({**record, **speed_record(row, spec.speed)})
    ref_name = pairs[ref_index][0].name if ref_index is not None else None  # type: ignore[union-attr]
    table.notes = _head_notes(tiny) + _stat_notes(ref_name) + list(spec.notes) + notes
    table.notes += speed_notes([row for _, row in pairs], spec.speed)
    if ref_name is not None:
        table.notes.insert(
            len(_head_notes(tiny)) + 2,
            _power_note(noise, "from the reference row (paired per question)"),
        )
    table.footer = protocol_lines([row for _, row in pairs], unparsed_metric)
    if tiny:
        table.notes.insert(
            1, "Δ is not computed (n/c) for tiny runs: they do not estimate the paper's numbers."
        )
    return table


def build_columns_table(spec: ReportSpec, results: SweepResults) -> Table:
    """Table 1: the paper's rows, then ours (mean ± std per accuracy column), n, Δ Avg, CI Avg."""
    tiny = results.tiny
    columns = list(spec.columns)
    avg_col = "Avg" if "Avg" in columns else columns[-1]
    header = ["method", *columns, "n", f"Δ {avg_col}", f"95% CI {avg_col}", f"MDD {avg_col}"]
    header.append("seeds")
    unparsed_metric = _unparsed_metric(spec.metric_prefix + avg_col)
    show_unparsed = any(row.values(unparsed_metric) for row in results.rows)
    if show_unparsed:
        header.append("unparsed %")
    header += speed_headers(spec.speed)
    table = Table(
        name=spec.name,
        title=_title(spec.title, tiny),
        header=header,
        rows=[],
        numeric_columns=set(range(1, len(header))),
        tiny=tiny,
    )
    reference = next((p for p in spec.paper if p.method == spec.reference), None)
    ref_avg = reference.values[columns.index(avg_col)] if reference is not None else None
    for paper_row in spec.paper:
        blanks = [""] * (len(header) - 1 - len(columns))
        table.rows.append([paper_row.method, *(fmt(v) for v in paper_row.values), *blanks])
        for column, value in zip(columns, paper_row.values, strict=False):
            table.records.append(
                {
                    "table": spec.name,
                    "row": paper_row.method,
                    "source": "paper",
                    "metric": spec.metric_prefix + column,
                    "paper": value,
                    "mean": None,
                    "std": None,
                    "n": None,
                    "delta": None,
                    "ci_low": None,
                    "ci_high": None,
                    "ci_method": None,
                    "p_value": None,
                    "test": None,
                    "mdd": None,
                    "seeds_needed": None,
                    "seeds_reason": None,
                    "tiny": False,
                }
            )
    if spec.paper:
        table.rule_after.add(len(table.rows) - 1)
    rows = results.rows or [RowRuns(key="", label=None, axes={})]
    notes: list[str] = []
    avgs = [row_stats(row, spec.metric_prefix + avg_col) for row in rows]
    noise = pool_run_noise([row.values(spec.metric_prefix + avg_col) for row in rows])
    for row, avg in zip(rows, avgs, strict=True):
        name = spec.ours if len(rows) == 1 or not row.key else f"{spec.ours}: {row.key}"
        if row.tiny:
            name += " [tiny]"
        cells = [name]
        per_col = [row_stats(row, spec.metric_prefix + c, with_questions=False) for c in columns]
        for st in per_col:
            cells.append(fmt_mean(st.mean, st.std))
        delta = None if (tiny or ref_avg is None or avg.mean is None) else avg.mean - ref_avg
        avg.power = paper_power(avg.n, delta if delta is not None else 0.0, noise)
        delta_text = "n/c" if tiny and avg.mean is not None else fmt(delta)
        if delta is not None and delta > 0:
            delta_text = "+" + delta_text
        cells += [str(avg.n), delta_text, _ci_text(avg.interval)]
        cells.append(fmt(avg.power.mdd) if avg.power else DASH)
        cells.append(fmt_seeds(avg.power) if avg.power and delta is not None else DASH)
        if show_unparsed:
            unparsed = row.values(unparsed_metric)
            cells.append(fmt(sum(unparsed) / len(unparsed)) if unparsed else DASH)
        cells += speed_cells(row, spec.speed, DASH)
        table.rows.append(cells)
        speed = speed_record(row, spec.speed)
        for column, st in zip(columns, per_col, strict=False):
            if column == avg_col:
                st = avg
            paper = reference.values[columns.index(column)] if reference is not None else None
            d = None if (tiny or paper is None or st.mean is None) else st.mean - paper
            record = _record(
                spec, row, None, st, paper, d, tiny, spec.metric_prefix + column, name=name
            )
            table.records.append({**record, **speed})
        if row.failed and not avg.n:
            notes.append(
                f"{name}: {len(row.failed)} run(s) failed or were cancelled, none succeeded."
            )
    against = "from the paper's single run on the same questions (its seed noise taken as ours)"
    power_note = _power_note(noise, against, paired=False)
    table.notes = _head_notes(tiny) + _stat_notes(None) + [power_note] + list(spec.notes) + notes
    table.notes += speed_notes(rows, spec.speed)
    table.footer = protocol_lines(rows, unparsed_metric)
    return table


def _unparsed_metric(metric: str) -> str:
    """``test/Avg`` -> ``test/unparseable_pct``: answers that did not parse, in percent."""
    split = metric.split("/", 1)[0] if "/" in metric else "test"
    return f"{split}/unparseable_pct"


def build_table(spec: ReportSpec, results: SweepResults) -> Table:
    """The table a spec describes, by its layout."""
    if spec.layout == "columns":
        return build_columns_table(spec, results)
    return build_rows_table(spec, results)


def _title(title: str, tiny: bool) -> str:
    return f"{title} [{TINY_LABEL}]" if tiny else title


def _head_notes(tiny: bool) -> list[str]:
    return [f"{TINY_LABEL.upper()}."] if tiny else []


def _record(
    spec: ReportSpec,
    row: RowRuns,
    row_spec: RowSpec | None,
    st: RowStats,
    paper: float | None,
    delta: float | None,
    tiny: bool,
    metric: str,
    *,
    name: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "table": spec.name,
        "row": name or (row_spec.name if row_spec is not None else row.key),
        "source": "ours",
        "metric": metric,
        "paper": paper,
        "mean": st.mean,
        "std": st.std,
        "n": st.n,
        "delta": delta,
        "ci_low": st.interval.low if st.interval else None,
        "ci_high": st.interval.high if st.interval else None,
        "ci_method": st.interval.method if st.interval else None,
        "p_value": st.test.p_value if st.test else None,
        "test": st.test.method if st.test else None,
        "mdd": st.power.mdd if st.power else None,
        "seeds_needed": st.power.seeds_needed if st.power else None,
        "seeds_reason": st.power.reason if st.power else None,
        "tiny": tiny,
    }
    for key, value in row.axes.items():
        if not isinstance(value, (dict, list)):
            out[f"axes.{key}"] = value
    return out

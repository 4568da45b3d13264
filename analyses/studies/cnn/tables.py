"""The CNN study's table: the last epoch per model, as markdown beside the figures."""

from __future__ import annotations

from analyses.studies.cnn.summary import CnnSummary


def table_rows(s: CnnSummary) -> list[tuple[str, int, int, float, float, float | None, float]]:
    """(model, parameters, seeds, final train error, final valid error, its sd over
    seeds (None for the single MLP run), test error) per model: the MLP, then the CNNs."""
    m = s.mlp
    rows: list[tuple[str, int, int, float, float, float | None, float]] = [
        (
            f"MLP {s.mlp.config.architecture} {s.mlp.config.activation}",
            s.mlp.n_params,
            1,
            m.curves.train_error[-1],
            m.curves.valid_error[-1],
            None,
            m.test_error,
        )
    ]
    for v in s.variants:
        a = v.aggregate
        rows.append(
            (
                f"CNN {v.name}",
                v.n_params,
                len(v.runs),
                a.train_error.mean[-1],
                a.final_valid_error,
                a.final_valid_error_sd,
                a.final_test_error,
            )
        )
    return rows


def markdown_table(s: CnnSummary) -> str:
    """The last epoch per model (errors in %; CNNs: mean over seeds, valid +- sd)."""

    def pct(v: float) -> str:
        return f"{100 * v:.3f}"

    lines = [
        "| model | params | seeds | train error % | valid error % | test error % |",
        "|---|---|---|---|---|---|",
    ]
    for name, params, seeds, train, valid, sd, test in table_rows(s):
        shown = pct(valid) + ("" if sd is None else f" +- {pct(sd)}")
        lines.append(f"| {name} | {params:,} | {seeds} | {pct(train)} | {shown} | {pct(test)} |")
    return "\n".join(lines) + "\n"

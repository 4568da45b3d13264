"""The report built from the four studies run on tiny synthetic data: its outline, its
numbered and referenced tables and figures, its page layout, the same bytes from two
builds in two folders, the source compiling on its own, a malformed summary naming its
field, and a study without results getting a section that says why."""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("typst")
pytest.importorskip("pypdf")

import pypdf
import typst

from analyses.pipeline.records import RecordError
from analyses.pipeline.store import ResultStore
from analyses.pipeline.study import Study
from analyses.pipeline.tasks import RunContext
from analyses.report import build_report
from analyses.report.build import (
    PREAMBLE,
    Built,
    MissingResults,
    dataset_title,
    main,
)
from analyses.report.markup import (
    MARGIN_BOTTOM_CM,
    MARGIN_TOP_CM,
    MARGIN_X_CM,
    Document,
    Markup,
    esc,
    m,
    ref,
)
from analyses.studies import SuiteOptions, entries, suite
from analyses.studies.cnn import CnnRun
from analyses.studies.gradcheck import ENTRY as GRADCHECK
from analyses.studies.init import ENTRY as INIT
from tests.analyses.local import run_local

pytestmark = pytest.mark.slow

PPI = 40  # pixels per inch of the pages rendered for the layout checks
CM = PPI / 2.54


def _options() -> SuiteOptions:
    """The quick suite on synthetic data, smaller still; the finite differences look at
    the output layer, whose units are never all dead."""
    o = SuiteOptions.quick("synthetic")
    o = o.with_options(INIT, attrs.evolve(o.of(INIT), sizes=(784, 32, 32, 10), n_diag=100))
    return o.with_options(GRADCHECK, attrs.evolve(o.of(GRADCHECK), layer=2))


def _run(out: Path, studies: list[Study[Any]], available: list[Study[Any]]) -> dict[str, str]:
    return run_local(out, studies, available=available).errors


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every study's results, as the main job leaves them (without the report)."""
    out = tmp_path_factory.mktemp("report") / "results"
    studies = suite(_options())
    assert _run(out, studies, studies) == {}
    return out


@pytest.fixture(scope="module")
def built(results: Path) -> Built:
    return build_report(results, timings=False)


def _copy(results: Path, to: Path) -> Path:
    out = to / "results"
    shutil.copytree(results, out)
    for name in ("report.typ", "report.pdf"):
        (out / name).unlink(missing_ok=True)
    return out


def _shows(pdf: Path | bytes, phrase: str, *, from_end: bool = False) -> bool:
    """Whether a page of the PDF shows ``phrase`` (whitespace ignored); pages are read
    one at a time (text extraction is slow), from the end when ``from_end``."""
    reader = pypdf.PdfReader(io.BytesIO(pdf) if isinstance(pdf, bytes) else pdf)
    pages = list(reader.pages)
    want = re.sub(r"\s", "", phrase)
    return any(
        want in re.sub(r"\s", "", p.extract_text()) for p in (pages[::-1] if from_end else pages)
    )


def _section(source: str, study: str) -> str:
    """The Typst source of one study's section, from its heading to the next one."""
    start = source.index(f" <sec-{study}>\n")
    end = source.find("\n= ", start)
    return source[start : None if end < 0 else end]


def _figure(source: str, label: str) -> str:
    """The Typst source of the table or figure labelled ``label``."""
    return source[: source.index(f"\n) <{label}>")].rsplit("#figure(", 1)[1]


def _rendered(source: Path) -> Iterator[np.ndarray[Any, Any]]:
    """Each page of the compiled source as a grey-level image (1: white)."""
    import matplotlib.image as mpimg

    compiler = typst.Compiler(str(source), root=str(source.parent), ignore_system_fonts=True)
    pages = compiler.compile(format="png", ppi=PPI)
    for png in [pages] if isinstance(pages, bytes) else pages or []:
        rgb = mpimg.imread(io.BytesIO(png), format="png")
        yield np.asarray(rgb[..., :3].mean(axis=-1))


# ----------------------------------------------------------------- structure


def test_the_outline_has_an_entry_for_each_section(built: Built) -> None:
    reader = pypdf.PdfReader(built.path)

    def titles(items: list[Any]) -> Iterator[str]:
        for item in items:
            if isinstance(item, list):
                yield from titles(item)
            else:
                yield str(item.title)

    found = list(titles(reader.outline))
    for sec in entries():
        assert any(sec.section.title in t for t in found), (sec.section.title, found)
    for sub in ("The assignment's sample", "Regularization", "The CNN against the MLP"):
        assert any(sub in t for t in found), (sub, found)
    assert "Comments" not in " ".join(found)  # the comment lists stay out of the outline
    assert built.pages == len(reader.pages) and built.missing == ()


def test_every_figure_and_table_has_a_caption_and_is_referred_to(built: Built) -> None:
    source = built.source.read_text()
    figures = re.findall(r"#figure\((.*?)\n\)( <([a-z0-9-]+)>)?", source, flags=re.S)
    assert len(figures) >= 8 + 9
    labels = []
    for body, _, label in figures:
        assert label, f"a figure without a label: {body[:80]}"
        assert re.search(r"caption: \[.{10,}?\]", body, flags=re.S), label
        labels.append(label)
    kinds = {"tab", "fig"}
    assert {label.split("-")[0] for label in labels} == kinds
    for label in labels:
        assert f"#ref(<{label}>);" in source, f"{label} is never referred to"
    for eq in re.findall(r"\$ <(eq-[a-z-]+)>", source):
        assert f"#ref(<{eq}>);" in source, f"{eq} is never referred to"
    # the comments cite what they read
    comments = source.split("[Comments]")[1:]
    assert comments and all("#ref(<fig-" in c or "#ref(<tab-" in c for c in comments)


def test_the_math_is_typeset_as_math(built: Built) -> None:
    source = built.source.read_text()
    for label in ("eq-xent", "eq-glorot", "eq-params", "eq-fd", "eq-fd-error", "eq-rule"):
        assert f"$ <{label}>" in source, label
    assert "eq-tuned" in source
    assert 'sqrt(6 / (h_"in" + h_"out"))' in source
    # the parameter count in the equation is the one the study reports
    s = json.loads((built.path.parent / "init" / "summary.json").read_text())
    assert f'"{s["settings"]["n_params"]:,}"' in source


def test_the_per_epoch_tables_have_one_row_per_epoch(built: Built) -> None:
    """A table over epochs grows down, not across: any number of epochs fits the width."""
    source = built.source.read_text()
    for label, header in (("tab-cnn-epochs", "[epoch]"), ("tab-init-epochs", "[epoch]")):
        table = _figure(source, label)
        assert f"table.header({header}" in table, label


def test_numbers_are_right_aligned_with_units_in_the_header(built: Built) -> None:
    source = built.source.read_text()
    table = _figure(source, "tab-init")
    assert "align: (left, right, right, right, right, right,)" in table
    assert "valid accuracy (%)" in table and "%]" not in table.split("table.header")[1]


# ----------------------------------------------------------------- layout


def test_every_page_keeps_inside_its_margins(built: Built) -> None:
    """No table or figure runs into the side margins: rendered, the strips left and right
    of the text area hold only white pixels."""
    strip = int(MARGIN_X_CM * CM) - 2
    for i, page in enumerate(_rendered(built.source), 1):
        assert page[:, :strip].min() > 0.99, f"page {i}: ink in the left margin"
        assert page[:, -strip:].min() > 0.99, f"page {i}: ink in the right margin"


def _fill(source: Path) -> list[float]:
    """How much of each page's text area holds content: the span from the first to the
    last row of the text area with any ink in it (text, table rules, figures; the page
    number below the text area is not counted), as a fraction of its height."""
    spans = []
    for page in _rendered(source):
        top, bottom = int(MARGIN_TOP_CM * CM), page.shape[0] - int(MARGIN_BOTTOM_CM * CM)
        inked = np.flatnonzero(page[top:bottom].min(axis=1) < 0.9)
        spans.append(0.0 if inked.size == 0 else (inked[-1] - inked[0]) / (bottom - top))
    return spans


def test_no_page_but_the_last_holds_less_than_a_quarter_page(built: Built) -> None:
    fill = _fill(built.source)
    assert len(fill) == built.pages
    short = [(i, f"{100 * f:.0f}%") for i, f in enumerate(fill[:-1], 1) if f < 0.25]
    assert short == [], f"pages holding less than a quarter page: {short}"


def test_the_fill_measure_sees_a_page_holding_a_paragraph_tail(tmp_path: Path) -> None:
    doc = Document(tmp_path)
    doc.raw(PREAMBLE.format(title='"tail"'))
    doc.paragraph("A sentence that ends a section. " * 4)
    doc.raw("#pagebreak()")
    doc.paragraph("The next section, on a page of its own. " * 80)
    source = tmp_path / "tail.typ"
    source.write_text(doc.source())
    first, second = _fill(source)
    assert first < 0.05 and second > 0.25


# ----------------------------------------------------------------- reproducibility


def test_two_builds_in_two_folders_give_the_same_bytes(
    built: Built, results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _copy(results, tmp_path)
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    again = build_report(Path("results"), timings=False)
    assert time.perf_counter() - start < 10
    assert again.path.read_bytes() == built.path.read_bytes()
    assert again.source.read_text() == built.source.read_text()
    for path in (other / "report.pdf", other / "report.typ"):
        data = path.read_bytes()
        for folder in (str(tmp_path), str(results), "/tmp"):
            assert folder.encode() not in data, (path.name, folder)


def test_the_source_compiles_on_its_own(built: Built, tmp_path: Path) -> None:
    """What the README says: an edited report.typ is recompiled by the Python package
    alone, with its folder as the root for the figures."""
    edited = built.source.read_text().replace("Comments]", "Remarks]")
    source = built.source.with_name("edited.typ")
    source.write_text(edited)
    try:
        pdf = typst.compile(str(source), ignore_system_fonts=True)
    finally:
        source.unlink()
    assert pdf.startswith(b"%PDF")
    assert _shows(pdf, "Remarks")
    assert typst.compile(str(built.source), ignore_system_fonts=True) == built.path.read_bytes()


def test_the_title_names_the_dataset(built: Built) -> None:
    first = pypdf.PdfReader(built.path).pages[0].extract_text()
    assert "learns synthetic data" in " ".join(first.split())
    # typeset, not printed as source: no Typst code on the title page
    assert "#align" not in first and "#text(" not in first and "#v(" not in first
    reader = pypdf.PdfReader(built.path)
    assert reader.metadata is not None
    assert str(reader.metadata.title).endswith("synthetic data")


# ----------------------------------------------------------------- bad or missing results


def test_a_malformed_summary_field_is_named(results: Path, tmp_path: Path) -> None:
    out = _copy(results, tmp_path)
    path = out / "search" / "summary.json"
    raw = json.loads(path.read_text())
    raw["eta"] = "three"
    path.write_text(json.dumps(raw))
    with pytest.raises(RecordError, match=r"eta"):
        build_report(out, timings=False)
    del raw["eta"]
    path.write_text(json.dumps(raw))
    with pytest.raises(RecordError, match=r"eta"):
        build_report(out, timings=False)
    assert not (out / "report.pdf").exists()


def test_the_command_names_the_field_and_exits_2(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(results, tmp_path)
    path = out / "init" / "summary.json"
    raw = json.loads(path.read_text())
    raw["settings"]["lr"] = "fast"
    path.write_text(json.dumps(raw))
    assert main(["--out", str(out), "--no-timings"]) == 2
    err = capsys.readouterr().err
    assert "lr" in err and "expected a number" in err


def test_a_failed_study_leaves_a_report_whose_section_says_why(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _copy(results, tmp_path)
    shutil.rmtree(out / "cnn")

    def broken(self: CnnRun, ctx: RunContext) -> Any:
        raise RuntimeError("out of memory on the test machine")

    monkeypatch.setattr(CnnRun, "run", broken)
    studies = suite(_options())
    errors = _run(out, [s for s in studies if s.name == "cnn"], studies)
    assert "cnn" in errors
    built = build_report(out, timings=False)
    assert built.missing == ("cnn",)
    source = built.source.read_text()
    section = _section(source, "cnn")
    assert (
        "stored run" in section
        and "failed" in section
        and "out of memory on the test machine" in section
    )
    assert "What to try" in section
    title = source[: source.index("#outline")]
    assert "No results" in title and "#ref(<sec-cnn>);" in title
    assert _shows(built.path, "out of memory on the test machine", from_end=True)


def test_studies_that_did_not_run_get_their_sections(results: Path, tmp_path: Path) -> None:
    out = _copy(results, tmp_path)
    for name in ("init", "search", "gradcheck"):
        shutil.rmtree(out / name)
    built = build_report(out, timings=False)
    assert built.missing == ("init", "search", "gradcheck")
    source = built.source.read_text()
    assert "it has not run" in _section(source, "init")
    gradcheck = _section(source, "gradcheck")
    assert "computed from the results of the search study (#ref(<sec-search>);)" in gradcheck
    assert built.pages >= 2


def test_no_results_at_all_is_an_error_that_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(MissingResults, match=r"python -m analyses\.main"):
        build_report(tmp_path, timings=False)


# ----------------------------------------------------------------- markup


def test_plain_text_is_escaped_and_prints_as_it_is(tmp_path: Path) -> None:
    nasty = "lr_0 * 2 = $5 #x @y <z> [a] `b` ~c // d /* e */ \\f"
    doc = Document(tmp_path)
    doc.paragraph(nasty)
    doc.paragraph("- a list? no")
    doc.paragraph("1. an enumeration? no")
    doc.table(["a_b", "c"], [["x*y", "1.5"]], caption="a #caption", label="tab-x")
    doc.paragraph(m("see ", ref("tab-x"), "."))
    pdf = typst.compile(doc.source().encode(), ignore_system_fonts=True)
    assert isinstance(pdf, bytes)
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    squeezed = re.sub(r"\s", "", text)
    assert nasty.replace(" ", "") in squeezed
    assert "-alist?no" in squeezed and "1.anenumeration?no" in squeezed
    assert "seeTable1." in squeezed
    assert esc(Markup("#raw")) == "#raw" and esc(m("#raw")) == "\\#raw"  # not escaped twice


def test_a_label_is_checked_and_used_once(tmp_path: Path) -> None:
    doc = Document(tmp_path)
    with pytest.raises(ValueError, match="lower-case"):
        ref("Fig 1")
    doc.heading("a", label="sec-a")
    with pytest.raises(ValueError, match="used twice"):
        doc.heading("b", label="sec-a")
    with pytest.raises(ValueError, match="2 cells, the header 3"):
        doc.table(["a", "b", "c"], [["1", "2"]], caption="c", label="tab-a")
    doc.paragraph(m("as ", ref("fig-nowhere"), " shows"))
    with pytest.raises(ValueError, match="fig-nowhere, which nothing defines"):
        doc.source()


def test_a_missing_figure_is_named_not_fatal(tmp_path: Path) -> None:
    doc = Document(tmp_path)
    doc.figure(tmp_path / "init" / "gone.svg", caption="A figure.", label="fig-gone")
    assert "gone.svg is missing)" in doc.source()
    assert str(tmp_path) not in doc.source()


def test_the_dataset_names_the_title(results: Path) -> None:
    from analyses.studies.search import SearchSummary

    search = ResultStore(results).read_summary("search", SearchSummary)
    for label, title in (
        ("fashion-mnist[train 600, eval 200]", "Fashion-MNIST"),
        ("mnist", "MNIST"),
        ("synthetic[train 600, eval 200]", "synthetic data"),
    ):
        assert dataset_title({"search": attrs.evolve(search, dataset=label)}) == title


def test_a_table_too_wide_for_the_page_is_split_not_clipped(tmp_path: Path) -> None:
    doc = Document(tmp_path)
    doc.raw(PREAMBLE.format(title='"wide"'))
    doc.paragraph("A table of 24 columns (", ref("tab-wide"), ") and one of 3.")
    header = ["epoch"] + [f"run {i} (%)" for i in range(23)]
    rows = [[str(e)] + [f"{e * i * 1.2345:.4e}" for i in range(23)] for e in range(1, 6)]
    doc.table(header, rows, caption="Wide.", label="tab-wide")
    doc.table(header[:3], [r[:3] for r in rows], caption="Narrow.", label="tab-narrow")
    doc.paragraph("See ", ref("tab-narrow"), ".")
    source = tmp_path / "wide.typ"
    source.write_text(doc.source())
    wide, narrow = doc.source().split(") <tab-wide>")
    assert wide.count("table.header([epoch]") >= 3  # every part keeps the first column
    assert narrow.count("table.header(") == 1
    strip = int(MARGIN_X_CM * CM) - 2
    for page in _rendered(source):
        assert page[:, :strip].min() > 0.99 and page[:, -strip:].min() > 0.99
    # without the split the same table runs into the margins: the check can fail
    unsplit = Document(tmp_path, text_width=1e9)
    unsplit.raw(PREAMBLE.format(title='"wide"'))
    unsplit.table(header, rows, caption="Wide.", label="tab-wide")
    source.write_text(unsplit.source())
    assert any(page[:, :strip].min() < 0.99 for page in _rendered(source))


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Co", "Cn", "Cc"))))
def test_any_text_compiles_without_warnings(text: str) -> None:
    doc = Document(Path("."))
    doc.paragraph(text)
    doc.bullets([text, text])
    doc.table([text], [[text]], caption=text, label="tab-a")
    doc.paragraph(m(text, ref("tab-a"), text))
    compiler = typst.Compiler(doc.source().encode(), ignore_system_fonts=True)
    pdf, warnings = compiler.compile_with_warnings(format="pdf")
    assert isinstance(pdf, bytes) and warnings == []


def test_adding_text_to_markup_escapes_the_text() -> None:
    a = "x_1 " + m(ref("tab-a")) + " #2"
    assert isinstance(a, Markup)
    assert a == "x\\_1 #ref(<tab-a>); \\#2"
    b = m("a") + m("#b")
    assert b == "a\\#b"

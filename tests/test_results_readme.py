"""results/README.md against the committed tables: its generated sections (the answer, the glance)
and the headline figure rebuild from them, superseded folders are out of the glance, and every
estimate in its prose is a cell of a table of the experiment it speaks of."""
import json
import re
from pathlib import Path

import matplotlib
import pytest

from repro.report.experiments import EXPERIMENTS, MARKERS, evidence
from repro.report.figures import summary
from repro.report.plan import read_plans

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
README = (RESULTS / "README.md").read_text()


def generated(key: str) -> list[str]:
    start, end = MARKERS[key]
    return README.split(start, 1)[1].split(end, 1)[0].strip().splitlines()


def test_the_answer_and_the_glance_are_the_tables():
    rows = evidence(RESULTS)
    assert generated("answer") == summary.answer(rows)
    assert generated("glance") == summary.glance(rows)
    assert README.index(MARKERS["answer"][0]) < 1500             # the first screen
    assert len(generated("answer")) <= 30
    kinds = [plan["hardware"] for plan in read_plans(RESULTS / "early_regime")]
    assert len(kinds) == 2                  # each claim once per kind with a plan and runs
    for kind in kinds:
        lines = [line for line in generated("glance") if "`early_regime/`" in line and f"| {kind} |" in line]
        assert len(lines) == len(EXPERIMENTS["early_regime"].claims)


def test_the_answer_takes_each_claims_most_decisive_row():
    """Complete plans beat underpowered ones, which beat unplanned rows; then more seeds."""
    row = {"effect": "e", "scale": "s", "hardware": "h", "folder": "f", "margin": None}
    rows = [{**row, "claim": "c", "verdict": "underpowered (3 of 9 planned seeds)", "planned": True, "n": 3,
             "seeds": "3 of 9"},
            {**row, "claim": "c", "verdict": "opposite", "planned": False, "n": 50, "seeds": "50"},
            {**row, "claim": "c", "verdict": "reproduced", "planned": True, "n": 9, "seeds": "9 of 9"}]
    [line] = summary.answer(rows)[2:]
    assert line.startswith("| c | **reproduced** |") and "(+2 in the glance)" in line


def test_superseded_folders_say_so_and_leave_the_glance():
    superseded = [name for name, e in EXPERIMENTS.items() if e.superseded]
    assert superseded == ["dynamics", "regime_map"]
    for name in superseded:
        assert EXPERIMENTS[name].glance is None
        assert (RESULTS / name / "table.md").read_text().splitlines()[2].startswith("**Superseded:**")
        assert f"`{name}/`" not in "\n".join(generated("glance"))


def test_the_headline_figure_rebuilds_from_the_tables(tmp_path):
    built_with = json.loads((RESULTS / "claims.json").read_text())["matplotlib"]
    if built_with != matplotlib.__version__:
        pytest.skip(f"claims.png was built with matplotlib {built_with}, this is {matplotlib.__version__}")
    rows = evidence(RESULTS)
    summary.plot_claims(rows, tmp_path)
    for name in ("claims.png", "claims.pdf"):
        assert (tmp_path / name).read_bytes() == (RESULTS / name).read_bytes(), name
    early = {c.text for c in EXPERIMENTS["early_regime"].claims}
    assert {r["claim"] for r in rows if r.get("planned")} >= early


PAIR = re.compile(r"([+-]?\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)")
FOLDER = re.compile(r"`([a-z_]+)/?[^`]*`")


def table_pairs(folder: str) -> list[tuple[float, float]]:
    path = RESULTS / folder / "table.md"
    return [(float(a), float(b)) for a, b in PAIR.findall(path.read_text())] if path.is_file() else []


def matches(text: tuple[str, str], pair: tuple[float, float]) -> bool:
    """The prose's numbers are the table's, rounded to the prose's digits."""
    digits = [len((t.split(".") + [""])[1]) for t in text]
    return all(abs(float(t) - v) <= 0.5 * 10 ** -d + 1e-9 for t, v, d in zip(text, pair, digits))


def prose_estimates():
    """(section heading, folders, estimate) for every 'a ± b' outside the generated sections, with
    the folders it may come from: those its paragraph names, else those the section last named
    (a table under the paragraph that introduces it), else the section heading's."""
    text = README
    for start, end in MARKERS.values():
        text = text.split(start, 1)[0] + text.split(end, 1)[1]
    for section in re.split(r"\n(?=#{2,3} )", text):
        heading = section.splitlines()[0]
        folders = [f for f in FOLDER.findall(heading) if (RESULTS / f).is_dir()]
        for paragraph in section.split("\n\n"):
            folders = [f for f in FOLDER.findall(paragraph) if (RESULTS / f).is_dir()] or folders
            for pair in PAIR.findall(paragraph):
                yield heading, folders, pair


ESTIMATES = list(prose_estimates())


@pytest.mark.parametrize("heading, folders, pair", ESTIMATES, ids=[f"{h[:30]}: {p[0]} ± {p[1]}"
                                                                     for h, _, p in ESTIMATES])
def test_every_estimate_in_the_prose_is_a_cell_of_its_experiments_table(heading, folders, pair):
    assert folders, f"{heading}: an estimate {pair} in a paragraph that names no results folder"
    cells = [cell for folder in folders for cell in table_pairs(folder)]
    assert any(matches(pair, cell) for cell in cells), f"{' ± '.join(pair)} is in no table of {folders}"


def test_the_next_windows_cost_is_its_cost_md():
    """The GPU path's estimate for dynamics_batch's window: each row of its cost.md (the pilot, the
    plan at the spread in so far and at twice it), runs and GPU-minutes as the table has them."""
    section = " ".join(README.split("### The next window", 1)[1].split("\n### ", 1)[0].split())
    cost = (RESULTS / "dynamics_batch" / "cost.md").read_text()
    rows = [line.strip("| ").split(" | ") for line in cost.splitlines()]
    estimates = [(row[2], row[4]) for row in rows if len(row) == 5 and row[1].isdigit()]
    assert len(estimates) == 3
    for runs, minutes in estimates:
        assert f"{runs} runs, ~{minutes} GPU-minutes" in section

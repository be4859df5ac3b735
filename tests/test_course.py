"""The course lab (cqlearn/course.py, book/instructor.md) for every chapter: the student edition hides every
solution and hidden test; autograding the instructor source gives full marks; the untouched student
edition scores 0, and its only errors are "not answered yet" in exercise cells.

Executing the book costs about 85 s a pass, so the module grades it twice in all (the source and the
student edition, CQ_QUICK=1, at the same time in two processes), and every test reads those two runs."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
from cqlearn import course  # noqa: E402

CHAPTERS = [path.name for path in course.chapters()]
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def cells(path):
    return json.loads(Path(path).read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def grading(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def long_lines(regions):
    """The lines the pre-stop hook compares: not comments, at least 20 characters."""
    lines = (line.strip() for region in regions for line in region.splitlines())
    return {line for line in lines if len(line) >= 20 and not line.startswith("#")}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """The student edition, made by the command behind `make student`."""
    out = tmp_path_factory.mktemp("course") / "student"
    course.main(["student", "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def graded(student, tmp_path_factory):
    """`make autograde SUBMISSION=book` and `SUBMISSION=build/student` (CQ_QUICK=1), run at the same time
    in two processes: {"book" | "student": (the rows of grades.csv, the folder of graded notebooks)}."""
    folder = tmp_path_factory.mktemp("graded")
    env = {**os.environ, "CQ_QUICK": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(course.ROOT), os.environ.get("PYTHONPATH", "")])}
    runs = {name: subprocess.Popen([sys.executable, "-m", "cqlearn.course", "autograde", str(submission),
                                    "--csv", str(folder / name / "grades.csv"), "--graded", str(folder / name / "nb")],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name, submission in (("book", course.BOOK), ("student", student))}
    results = {}
    for name, run in runs.items():
        output = run.communicate(timeout=1200)[0]
        assert run.returncode == 0, output
        with open(folder / name / "grades.csv", newline="") as file:
            rows = [{"chapter": r["chapter"], "points": float(r["points"]), "max_points": float(r["max_points"])}
                    for r in csv.DictReader(file)]
        results[name] = rows, folder / name / "nb"
    return results


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_solution_or_hidden_test_line_reaches_the_student_edition(student, name):
    book = cells(course.BOOK / name)
    secret = long_lines(r for c in book for r in SOLUTION.findall(source(c)) + HIDDEN.findall(source(c)))
    for cell in cells(student / name):
        text = source(cell)
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{name}, cell {grading(cell).get('grade_id', text[:40])!r} shows {leaked}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_follows_the_exercise_convention(name):
    book = cells(course.BOOK / name)
    answers = {grading(c)["grade_id"]: c for c in book if grading(c).get("solution")}
    checks = {grading(c)["grade_id"]: c for c in book if grading(c).get("grade")}
    chapter = f"ch{name[:2]}"
    assert answers, f"{name} has no exercise in the nbgrader convention"
    assert {g.replace("-answer", "-check") for g in answers} == set(checks), "each answer has its check"
    assert all(g.startswith(chapter + "-ex") for g in [*answers, *checks]), "grade ids are chNN-exK-..."
    points = [grading(c)["points"] for c in checks.values()]
    assert set(points) <= {1, 2} and 2 in points, "1 point a value, 2 an implement-it exercise; at least one"
    for cell in answers.values():
        assert SOLUTION.search(source(cell)) and "hide-input" in cell["metadata"].get("tags", [])
        assert "solution" not in cell["metadata"].get("tags", []) and "jupyter" not in cell["metadata"]
    text = "\n".join(source(c) for c in book if c["cell_type"] == "markdown")
    for heading in ("**Prerequisites.**", "**Estimated time.**", "## Exercises", "## Summary", "## References"):
        assert heading in text, f"{name} lacks {heading}"
    assert "https://" in text.split("## References")[1], "references with links"


def test_the_instructor_page_stays_with_the_instructor(student):
    assert (student / "notation.md").exists() and not (student / "instructor.md").exists()
    assert "file: notation" in (student / "_toc.yml").read_text()
    assert "instructor" not in (student / "_toc.yml").read_text()


@pytest.mark.parametrize("name", CHAPTERS)
def test_student_answer_cells_are_shown_and_the_static_book_may_show_their_errors(student, name):
    exercises = [c for c in cells(student / name) if grading(c).get("solution") or grading(c).get("grade")]
    assert exercises
    for cell in exercises:
        tags = cell["metadata"].get("tags", [])
        assert "hide-input" not in tags and "raises-exception" in tags
        if grading(cell).get("solution"):
            assert course.CODE_STUB in source(cell)


def test_grade_ids_are_unique_in_the_book():
    ids = [grading(c)["grade_id"] for name in CHAPTERS for c in cells(course.BOOK / name) if grading(c)]
    assert len(ids) == len(set(ids))


def test_autograding_the_book_gives_full_marks(graded):
    rows, folder = graded["book"]
    assert [row["chapter"] + ".ipynb" for row in rows] == CHAPTERS
    assert (folder.parent / "grades.csv").read_text().startswith("chapter,points,max_points\n")
    assert all(row["points"] == row["max_points"] for row in rows), rows
    assert sum(row["max_points"] for row in rows) > 0


def test_the_untouched_student_edition_scores_nothing(graded):
    rows, _ = graded["student"]
    assert [row["max_points"] for row in rows] == [row["max_points"] for row in graded["book"][0]]
    assert all(row["points"] == 0 for row in rows), rows


@pytest.mark.parametrize("name", CHAPTERS)
def test_the_student_edition_fails_only_with_not_answered_yet_in_exercises(graded, name):
    _, folder = graded["student"]
    for cell in cells(folder / name):
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        for error in errors:
            assert grading(cell).get("solution") or grading(cell).get("grade"), \
                f"{name}: a cell that is not an exercise fails: {error['ename']}: {error['evalue']}\n{source(cell)[:200]}"
            assert "not answered yet" in error["evalue"], f"{name} {grading(cell)['grade_id']}: {error['evalue']}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_the_source_passes_every_check(graded, name):
    _, folder = graded["book"]
    for cell in cells(folder / name):
        errors = [f"{o['ename']}: {o['evalue']}" for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{name}: {errors}"


def test_bad_submissions_get_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="must be a folder"):
        course.autograde(tmp_path / "missing")
    with pytest.raises(ValueError, match="none of the chapters"):
        course.autograde(tmp_path)


def test_grades_csv_is_one_row_per_chapter(tmp_path):
    rows = [{"chapter": "01_why_clamp", "points": 3.0, "max_points": 5.0},
            {"chapter": "02_quantizing_activations", "points": 0.0, "max_points": 5.0}]
    path = course.write_csv(rows, tmp_path / "out" / "grades.csv")
    assert path.read_text().splitlines() == ["chapter,points,max_points", "01_why_clamp,3,5",
                                             "02_quantizing_activations,0,5"]
    assert [p.name for p in path.parent.iterdir()] == ["grades.csv"], "no temporary file left behind"
    assert course.table(rows).splitlines()[-1].split() == ["total", "3", "10"]

"""The course lab (book/instructor.md): the student edition of the book and autograding, with nbgrader.

`book/` is the instructor source. Each exercise has an answer cell (an nbgrader solution cell: the
solution sits between ### BEGIN SOLUTION and ### END SOLUTION) and a check cell (an nbgrader
autograder-test cell whose hidden tests sit between ### BEGIN HIDDEN TESTS and ### END HIDDEN TESTS).

    python -m cqlearn.course student [--out build/student]          # make student
    python -m cqlearn.course autograde DIR [--csv build/grades.csv]   # make autograde SUBMISSION=DIR

Both run nbgrader (generate_assignment, autograde) in a temporary course directory, so nothing is
left behind but the student edition, the grades and the graded notebooks.
"""
import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
BUILD = ROOT / "build"
ASSIGNMENT = "book"   # the whole book is one nbgrader assignment, a notebook per chapter
STUDENT = "student"
# What an unanswered exercise runs: its message is what the student sees in the answer cell and in the check.
CODE_STUB = 'raise NotImplementedError("not answered yet: replace this line with your answer, run the cell, then run the check")'
TIMEOUT = 900   # seconds per cell, as book/_config.yml: a chapter runs in seconds under CQ_QUICK=1
BESIDE = ("*.md", "_toc.yml", "_config.yml")   # what the chapters need beside them (the book's pages)


def chapters(folder=BOOK):
    """The chapter notebooks NN_name.ipynb of a folder, in order."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def _api(course):
    try:
        from nbgrader.apps import NbGraderAPI
        from traitlets.config import Config
    except ImportError:
        raise SystemExit("the course tools need nbgrader: pip install -e '.[dev]' (or pip install nbgrader)") from None
    # nbgrader runs the `alembic` command to set up its database: find it next to this Python
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.course_id = "cqlearn"
    config.ClearSolutions.code_stub = {"python": CODE_STUB}
    config.Execute.timeout = TIMEOUT
    config.Exchange.root = str(Path(course) / "exchange")   # never touch the system-wide exchange
    return NbGraderAPI(config=config)


def _run(result, what):
    if not result["success"]:
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('log', '')}\n{result.get('error', '')}")


def _generate(course, source=BOOK):
    """nbgrader generate_assignment on the chapters of `source`, in the course directory `course`."""
    folder = Path(course) / "source" / ASSIGNMENT
    folder.mkdir(parents=True)
    for path in chapters(source):
        shutil.copy(path, folder / path.name)
    api = _api(course)
    _run(api.generate_assignment(ASSIGNMENT), "generate_assignment")
    return api, Path(course) / "release" / ASSIGNMENT


def _replace_folder(new, target):
    """Put the folder `new` at `target` in one rename; the old one goes only once the new one is there."""
    target = Path(target)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)


def _for_students(path):
    """Student-edition touches: answer cells are shown (no hide-input), and the static book may show an
    exercise's "not answered yet" (raises-exception: jupyter-book builds the site from this edition)."""
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        grading = cell.get("metadata", {}).get("nbgrader", {})
        if grading.get("solution") or grading.get("grade"):
            tags = [t for t in cell["metadata"].get("tags", []) if t != "hide-input"]
            cell["metadata"]["tags"] = tags + ["raises-exception"]
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def student(out=BUILD / "student", source=BOOK):
    """Write the student edition of the chapters of `source` to `out`: solutions replaced by a stub that
    raises "not answered yet", hidden tests removed, plus the book's pages but book/instructor.md (it
    has worked answers). Returns `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".course.") as course:
        _, release = _generate(course, source)
        for path in chapters(release):
            _for_students(path)
        for pattern in BESIDE:
            for page in Path(source).glob(pattern):
                if page.name != "instructor.md":
                    shutil.copy(page, release / page.name)
        toc = release / "_toc.yml"
        if toc.exists():   # the instructor's page stays with the instructor
            toc.write_text("".join(line for line in toc.read_text().splitlines(True) if "file: instructor" not in line))
        _replace_folder(release, out)
    return out


def autograde(submission, graded=BUILD / "autograded", source=BOOK):
    """Grade the chapter notebooks in the folder `submission` against the instructor source: nbgrader
    runs each one with the source's hidden tests put back. Returns one row per chapter of the source,
    {"chapter", "points", "max_points"}; a chapter missing from the submission scores 0. The graded
    notebooks (with their outputs) go to `graded`."""
    submission = Path(submission)
    if not submission.is_dir():
        raise ValueError(f"SUBMISSION must be a folder of chapter notebooks (NN_name.ipynb), got {str(submission)!r}")
    names = [path.name for path in chapters(source)]
    handed_in = [name for name in names if (submission / name).exists()]
    if not handed_in:
        raise ValueError(f"{submission} holds none of the chapters {names[0]} ... {names[-1]}: nothing to grade")
    graded = Path(graded)
    graded.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=graded.parent, prefix=".course.") as course:
        api, _ = _generate(course, source)
        folder = Path(course) / "submitted" / STUDENT / ASSIGNMENT
        folder.mkdir(parents=True)
        for name in handed_in:
            shutil.copy(submission / name, folder / name)
        _run(api.autograde(ASSIGNMENT, STUDENT), "autograde")
        rows = _scores(course, names, handed_in)
        _replace_folder(Path(course) / "autograded" / STUDENT / ASSIGNMENT, graded)
    return rows


def _scores(course, names, handed_in):
    from nbgrader.api import Gradebook
    rows = []
    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gradebook:
        for name in names:
            chapter = name[:-len(".ipynb")]
            notebook = gradebook.find_notebook(chapter, ASSIGNMENT)
            points = 0.0
            if name in handed_in:
                points = gradebook.find_submission_notebook(chapter, ASSIGNMENT, STUDENT).score
            rows.append({"chapter": chapter, "points": points, "max_points": notebook.max_score})
    return rows


def write_csv(rows, path=BUILD / "grades.csv"):
    """Write the grade rows as CSV (chapter,points,max_points), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["chapter", "points", "max_points"])
            writer.writeheader()
            writer.writerows({**row, "points": f"{row['points']:g}", "max_points": f"{row['max_points']:g}"}
                             for row in rows)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)   # mkstemp makes it private; a grades file is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path


def table(rows):
    """The grade rows as a text table with a total."""
    lines = [f"{'chapter':<32}{'points':>8}{'max':>6}"]
    lines += [f"{r['chapter']:<32}{r['points']:>8g}{r['max_points']:>6g}" for r in rows]
    total, most = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
    return "\n".join(lines + [f"{'total':<32}{total:>8g}{most:>6g}"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cqlearn.course", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("student", help="write the student edition of book/")
    make.add_argument("--out", type=Path, default=BUILD / "student")
    grade = commands.add_parser("autograde", help="grade a folder of chapter notebooks")
    grade.add_argument("submission", type=Path)
    grade.add_argument("--csv", type=Path, default=BUILD / "grades.csv")
    grade.add_argument("--graded", type=Path, default=BUILD / "autograded")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")   # nbgrader's and nbformat's deprecation notes are not for the instructor
    try:
        if args.command == "student":
            print(f"student edition: {student(args.out)}")
        else:
            rows = autograde(args.submission, args.graded)
            print(table(rows))
            print(f"grades: {write_csv(rows, args.csv)}; graded notebooks: {args.graded}")
    except (ValueError, RuntimeError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()

# cqlearn: `make demo` runs the method on the embedded digits data; `make test` checks everything.
# Both set up .venv from nothing (Python 3 and make are all they need). Course lab: `make student`,
# `make autograde SUBMISSION=DIR` (book/instructor.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test unit notebooks lab bench book browser student autograde clean

$(BIN)/cqlearn: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/cqlearn
	$(BIN)/cqlearn demo

test: unit notebooks

unit: $(BIN)/cqlearn
	$(BIN)/python -m pytest tests

notebooks: $(BIN)/cqlearn
	CQ_QUICK=1 $(BIN)/python -m pytest --nbval-lax book -p no:cacheprovider

# every chapter's explorer in JupyterLab and headless Chromium; screenshots in tests/browser/screenshots/
browser: $(BIN)/cqlearn
	bash .ci/install-browser.sh $(VENV)
	CQ_BROWSER=1 $(BIN)/python -m pytest tests/browser -p no:cacheprovider

lab: $(BIN)/cqlearn
	$(BIN)/jupyter lab book/

bench: $(BIN)/cqlearn
	$(BIN)/pip install --quiet nbclient psutil loguru
	$(BIN)/pip install --quiet --no-deps spikingjelly  # its own dependencies would pull torchaudio
	$(BIN)/python benchmarks/run.py

# The course lab (book/instructor.md): the student edition, and grading a folder of chapter notebooks.
student: $(BIN)/cqlearn
	$(BIN)/python -m cqlearn.course student --out build/student

# make autograde SUBMISSION=DIR [CQ_QUICK=0]: grade with the mode the students worked in (quick by default).
CQ_QUICK ?= 1
autograde: $(BIN)/cqlearn
	@test -n "$(SUBMISSION)" || { echo "say which folder to grade: make autograde SUBMISSION=DIR" >&2; exit 2; }
	CQ_QUICK=$(CQ_QUICK) $(BIN)/python -m cqlearn.course autograde $(SUBMISSION) --csv build/grades.csv

# The static site is built from the student edition, so it shows the exercises without their solutions.
book: student
	$(BIN)/pip install --quiet -e '.[book]'
	CQ_STATIC=1 CQ_QUICK=1 $(BIN)/jupyter-book build build/student

clean:
	rm -rf $(VENV) book/_build build cq-demo *.egg-info

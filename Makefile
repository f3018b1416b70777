# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3

.PHONY: install demo test bench lint

.install-stamp: pyproject.toml
	$(PYTHON) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

install: .install-stamp

demo: install
	$(PYTHON) -m privcam.pipelines.demo

test: install
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) benchmarks/key_schedule.py
	$(PYTHON) benchmarks/keyed_inference.py

lint: install
	ruff format --check .
	ruff check .

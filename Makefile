# Two commands do all the set-up on a fresh machine: `make reproduce` (the main job) and `make test`.
PYTHON ?= python3
FASHION_MNIST = /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: install reproduce demo test test-slow bench lint

.install-stamp: pyproject.toml
	dpkg -s libgl1 libglib2.0-0 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libgl1 libglib2.0-0)
	$(PYTHON) -m pip uninstall --quiet --yes opencv-python-headless 2>/dev/null || true
	$(PYTHON) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

$(FASHION_MNIST):
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist

install: .install-stamp $(FASHION_MNIST)

reproduce: install
	privcam run reproduce_fashion_mnist

demo: install
	privcam-demo

test: install
	$(PYTHON) -m pytest

test-slow: install
	$(PYTHON) -m pytest -m slow

bench: install
	$(PYTHON) benchmarks/key_schedule.py
	$(PYTHON) benchmarks/keyed_inference.py
	$(PYTHON) benchmarks/sensor.py
	$(PYTHON) benchmarks/webcam.py
	$(PYTHON) benchmarks/nonce.py
	$(PYTHON) benchmarks/augment.py
	$(PYTHON) benchmarks/cli_startup.py

lint: install
	ruff format --check .
	ruff check .
	lint-imports

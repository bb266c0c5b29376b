# The two commands of the README: `make example` and `make test`. Both set up first.
.PHONY: setup example test lint

setup:
	@scripts/setup.sh

example: setup
	.venv/bin/tinysplit inspect examples/mnist/lenet5.onnx
	.venv/bin/tinysplit compile examples/mnist/lenet5.onnx --target stm32 -o out/mnist \
		--quantize int8 --calibration examples/mnist/calibration.npz

test: setup
	.venv/bin/python -m pytest -n 2 -q

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy compiler passes backends server

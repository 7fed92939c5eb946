# Two commands for a newcomer: `make demo` (the main job) and `make test` (the whole suite).
PY ?= python3

.PHONY: install test lint fmt demo bench soak clean

install:
	$(PY) -m pip install -q -e '.[dev]'

test: install
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check switch hsm_sim terminal_sim
	$(PY) -m mypy

fmt:
	$(PY) -m ruff format switch hsm_sim terminal_sim tests bench
	$(PY) -m ruff check --fix .

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) bench/run_all.py

# soak: >=100,000 fuzzed inputs (framing, both codecs, TCP, HSM), connection abuse, the switch SIGKILLed under load
# (--crashes, default 10 per ledger backend) and faults (HSM, database, disk, SIGTERM) with the terminals' audit;
# prints the figures (docs/RELIABILITY.md). Longer: make soak SOAK_ARGS="--crashes 50 --fault-rounds 5"
soak: install
	$(PY) scripts/soak.py $(SOAK_ARGS)

clean:
	rm -rf var/*.db* var/clearing var/demo .pytest_cache .mypy_cache .ruff_cache

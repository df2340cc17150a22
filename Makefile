# The two commands of the README, and the checks CI runs before the tests.
.PHONY: demo test lint typecheck

demo:
	./scripts/bootstrap.sh
	.venv/bin/pathwatch serve --demo

test:
	./scripts/bootstrap.sh --test
	.venv/bin/python -m pytest

lint:
	./scripts/bootstrap.sh --test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck:
	./scripts/bootstrap.sh --test
	./scripts/typecheck.sh

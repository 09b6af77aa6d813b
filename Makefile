# The Playbook template's own tasks. `make test` is what CI runs (.ci/run).

.DEFAULT_GOAL := help
PYTEST_ARGS ?=
# pytest-xdist workers: one per core. Tests that share a bootstrapped project or an image
# are grouped on one worker (xdist_group, tests/conftest.py: on_one_worker).
WORKERS ?= auto
# The generated projects' tools run many Python processes on one virtualenv each: let them
# keep their bytecode (some machines, this one among them, set PYTHONDONTWRITEBYTECODE).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help deps test test-fast example docs

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## Install what the tests need (Python, npm and, as root, apt packages)
	./dev/install-test-deps.sh

test: deps ## The whole test suite, after installing what it needs
	uv run pytest -n $(WORKERS) --dist loadgroup --durations=40 $(PYTEST_ARGS)

test-fast: ## Renders and static checks: no server, npm tool or container (uses what `make deps` installed)
	uv run pytest -n $(WORKERS) -m "not slow and not npm" $(PYTEST_ARGS)

example: ## Generate a project with defaults into ../my-service (as README's first command)
	uv run copier copy --defaults --vcs-ref HEAD "$(CURDIR)" ../my-service

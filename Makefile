# The Playbook template's own tasks. `make test` is what CI runs (.ci/run).

.DEFAULT_GOAL := help
PYTEST_ARGS ?=
# pytest-xdist workers: one more than the cores, so that a worker waiting on a server, a
# download or a canary's one-request-a-second keeps no core idle (2 cores: 20:46 with 3
# workers, 22:56 with 2). Tests that share a bootstrapped project or an image are grouped on
# one worker (xdist_group, tests/conftest.py: on_one_worker).
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
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

# The Playbook template's own tasks. `make test` is what CI runs (.ci/run).

.DEFAULT_GOAL := help
PYTEST_ARGS ?=

.PHONY: help deps test test-fast example docs

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## Install what the tests need (Python, npm and, as root, apt packages)
	./dev/install-test-deps.sh

test: deps ## The whole test suite, after installing what it needs
	uv run pytest $(PYTEST_ARGS)

test-fast: ## Only the tests that do not generate and run whole projects
	uv run pytest -m "not slow" $(PYTEST_ARGS)

example: ## Generate a project with defaults into ../my-service (as README's first command)
	uv run copier copy --defaults --vcs-ref HEAD "$(CURDIR)" ../my-service

.PHONY: help run test lint

help:  ## Show the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

run:  ## Set up and start the embedded service (./run up)
	./run up

test:  ## Set up and run every check and test (./run test)
	./run test

lint:  ## ruff and mypy only
	uv run ruff check . && uv run ruff format --check . && uv run mypy

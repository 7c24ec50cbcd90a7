# dcn — `make help` lists the targets.
SHELL := /bin/bash
ROOT := $(abspath .)
TOOLS_BIN := $(ROOT)/tools/node_modules/.bin
export PATH := $(TOOLS_BIN):$(PATH)
# forge compiles with solc-js through this shim (no native solc can be downloaded here).
export FOUNDRY_SOLC := $(ROOT)/scripts/solc-shim.js
FORGE := cd contracts && forge
CARGO ?= cargo

.DEFAULT_GOAL := help
# Example module images, built locally (no registry): see scripts/build-images.
.PHONY: help setup images build demo test test-contracts check-artifacts test-rust test-gpu contracts bench bench-compare mutants lint fmt clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: ## Install what dcn needs (apt, npm tools, Docker daemon); safe to repeat
	@bash scripts/setup

images: setup ## Build the example module images locally (debootstrap, docker import)
	@bash scripts/build-images

build: setup ## Build the dcn binary (target/release/dcn)
	$(CARGO) build --release --locked

demo: ## Start a local network (dcn dev), buy a cowsay job on it, stop: the first thing to run
	@# The image build (mostly downloads) runs beside the compile.
	@$(MAKE) --no-print-directory -j2 build images
	@bash scripts/demo

test: setup test-contracts check-artifacts test-rust ## Everything CI runs: contract tests, artifact check, cargo tests

test-contracts: setup ## Contract unit, fuzz and invariant tests (forge, offline)
	$(FORGE) test --offline

check-artifacts: setup ## Fail if contracts/out differs from a fresh compile
	node contracts/build.js --check

test-rust: setup images ## cargo tests: unit and integration (real anvil, real Docker)
	$(CARGO) test --locked --all-targets --features fault-injection

test-gpu: setup images ## The GPU test on a machine with an NVIDIA GPU and the container toolkit (fails without one)
	DCN_TEST_GPU=1 $(CARGO) test --locked --test gpu -- --ignored

contracts: setup ## Recompile the contracts into contracts/out (commit the result)
	node contracts/build.js

bench: setup images ## Print the product metrics (`name value unit` per line)
	@$(CARGO) bench --locked -q 2>/dev/null | grep -E '^[a-z0-9]+(_[a-z0-9]+)+ [0-9.]+ [^ ]+$$'

bench-compare: setup images ## Benches of REF=<commit> and of the working tree, interleaved: medians and ratios (ROUNDS=3, BENCHES=e2e,solver)
	@node scripts/bench-compare.js $(REF) $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(BENCHES),--benches $(BENCHES))

mutants: setup ## Mutation run of the contracts: prints contract_mutants_killed <killed>/<total> (1 to 2.5 hours on two cores)
	node scripts/mutants.js

lint: setup ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --all-targets --all-features -- -D warnings

fmt: ## Format the Rust code
	$(CARGO) fmt

clean: ## Remove build outputs (a rebuild takes several minutes)
	$(CARGO) clean
	rm -rf contracts/build contracts/cache

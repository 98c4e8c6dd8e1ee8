# Buddy: every entry point a developer or CI needs. Each target installs what
# it uses (Go modules, the pinned Node tools in infra/package-lock.json).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export GOFLAGS := -buildvcs=false

NODE_STAMP := infra/node_modules/.buddy-installed

.PHONY: tools test vet fuzz-seeds
tools: $(NODE_STAMP)
	go mod download

# npm ci only when the lock file changed; the stamp records the last install.
$(NODE_STAMP): infra/package.json infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund --loglevel=error
	touch $@

vet:
	test -z "$$(gofmt -l lambda infra)" || { gofmt -l lambda infra; echo "gofmt needed"; exit 1; }
	go vet ./...

test: tools vet
	go test -count=1 ./...

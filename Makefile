# ClinicPulse — make run | make test | make bench | make lint | make fuzz
GO        ?= go
PKGS      := ./...
TESTFLAGS ?= -race -count=1 -timeout 30m
PG_URL    := $(filter postgres%,$(DATABASE_URL))

.PHONY: run build test test-all test-go test-e2e bench bench-go bench-load lint fuzz clean

run: ## build, then serve the dashboards on the embedded SQLite database with demo data
	@echo "== make run: building bin/clinicpulse (the first build downloads the Go modules and compiles them: about 2 minutes; later builds take seconds)"
	$(GO) build -v -o bin/clinicpulse ./cmd/clinicpulse
	@echo "== make run: starting bin/clinicpulse with DEV=1 (demo data; a link per role follows)"
	DEV=1 bin/clinicpulse

build:
	$(GO) build -o bin/clinicpulse ./cmd/clinicpulse

# PG_SKIPPED is the banner make test prints at its start and its end when
# DATABASE_URL does not name Postgres: what did not run, and how to run it.
PG_SKIPPED = echo; \
  echo '\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#'; \
  echo '\#\#  POSTGRES NOT TESTED: DATABASE_URL does not name Postgres, so the Postgres'; \
  echo '\#\#  pass of the Go tests and the Postgres-only tests (several instances on one'; \
  echo '\#\#  database, LISTEN/NOTIFY, the load balancer of docs/deploy.md) are SKIPPED.'; \
  echo '\#\#  To run them, with a Postgres you can create schemas in:'; \
  echo "\#\#    DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' make test"; \
  echo '\#\#  or, on a fresh Debian machine: bash .ci/run (installs and starts Postgres).'; \
  echo '\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#\#'; \
  echo

test: ## gofmt and vet, then every test: Go on SQLite, again on Postgres when DATABASE_URL is set, then the browser tests
ifeq ($(PG_URL),)
	@$(PG_SKIPPED)
	@$(MAKE) --no-print-directory test-all || { status=$$?; $(PG_SKIPPED); exit $$status; }
	@$(PG_SKIPPED)
else
	@$(MAKE) --no-print-directory test-all
endif

test-all: lint test-go test-e2e

test-go:
	@echo "== go test on SQLite"
	env -u DATABASE_URL CLINICPULSE_DB_PASS=$(if $(PG_URL),sqlite,) $(GO) test $(TESTFLAGS) $(PKGS)
ifneq ($(PG_URL),)
	@echo "== go test on Postgres ($(DATABASE_URL))"
	$(GO) test $(TESTFLAGS) $(PKGS)
endif

test-e2e:
	@if [ -x e2e/run.sh ]; then e2e/run.sh; else echo "no browser tests"; fi

bench: bench-go bench-load ## every benchmark: go test -bench, then the load generator

bench-go: ## in-process benchmarks (SQLite; the write benchmark on Postgres too when DATABASE_URL is set)
	env -u DATABASE_URL $(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(PKGS)
ifneq ($(PG_URL),)
	$(GO) test -run '^$$' -bench 'CreateQueueEntry' -benchmem -benchtime 2s ./store/
endif

LOADGEN = $(GO) run ./cmd/loadgen -bin bin/clinicpulse
bench-load: build ## the server in its own process under loopback load; prints one table
	@$(LOADGEN) -subscribers 1000 -rate 50 -duration 10s -pollers 1000
	@$(LOADGEN) -header=false -subscribers 1000 -rate 50 -duration 10s -pollers 0 -peer r3labs
	@$(LOADGEN) -header=false -subscribers 1000 -rate 50 -duration 10s -pollers 0 -baseline
	@$(LOADGEN) -header=false -subscribers 1000 -rate 50 -duration 10s -pollers 0 -proto h1-tls
	@$(LOADGEN) -header=false -subscribers 1000 -rate 50 -duration 10s -pollers 0 -proto h2
	@$(LOADGEN) -header=false -subscribers 1000 -rate 50 -duration 10s -pollers 0 -proto h2-mux
	@$(LOADGEN) -header=false -subscribers 5000 -rate 4 -duration 10s -pollers 0
	@$(LOADGEN) -header=false -subscribers 5000 -rate 4 -duration 10s -pollers 0 -peer r3labs
	@$(LOADGEN) -header=false -subscribers 5000 -rate 4 -duration 10s -pollers 0 -baseline
	@$(LOADGEN) -header=false -subscribers 10000 -rate 1 -duration 5s -pollers 0
	@$(LOADGEN) -header=false -subscribers 10000 -rate 1 -duration 5s -pollers 0 -peer r3labs
	@$(LOADGEN) -header=false -subscribers 10000 -rate 1 -duration 5s -pollers 0 -baseline
	@$(LOADGEN) -header=false -subscribers 1 -rate 0 -writers 8 -duration 5s -pollers 0
	@$(LOADGEN) -header=false -subscribers 5000 -rate 0 -writers 8 -duration 5s -pollers 0 -topics doctors
	@$(LOADGEN) -header=false -subscribers 5000 -rate 0 -writers 8 -duration 5s -pollers 0
ifneq ($(PG_URL),)
	@$(LOADGEN) -header=false -db '$(DATABASE_URL)' -subscribers 1000 -rate 50 -duration 10s -pollers 0
	@$(LOADGEN) -header=false -db '$(DATABASE_URL)' -cross -subscribers 1000 -rate 50 -duration 10s -pollers 0
	@$(LOADGEN) -header=false -db '$(DATABASE_URL)' -subscribers 1 -rate 0 -writers 8 -duration 5s -pollers 0
	@$(LOADGEN) -header=false -db '$(DATABASE_URL)' -subscribers 5000 -rate 0 -writers 8 -duration 5s -pollers 0 -topics doctors
	@$(LOADGEN) -header=false -db '$(DATABASE_URL)' -subscribers 5000 -rate 0 -writers 8 -duration 5s -pollers 0
endif

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin data

# tokend — build, test and install. `make test` and (later) `make run` are the two commands a
# new machine needs: both install the system packages they use when missing.

SHELL := /bin/bash
.DEFAULT_GOAL := build

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(DESTDIR)$(PREFIX)/bin
SHAREDIR := $(DESTDIR)$(PREFIX)/share
UNITDIR := $(DESTDIR)/etc/systemd/system
SYSUSERSDIR := $(DESTDIR)/usr/lib/sysusers.d
TMPFILESDIR := $(DESTDIR)/usr/lib/tmpfiles.d
CONFDIR := $(DESTDIR)/etc/tokend

SWIFT ?= swift
# Release binaries carry the Swift runtime statically: jwt-inspect starts in a few ms.
RELEASE_FLAGS := -c release --static-swift-stdlib

# Debian packages the build needs, and those only the tests need.
BUILD_PACKAGES := pkg-config libssl-dev openssl libsystemd-dev libsqlite3-dev libargon2-dev
TEST_PACKAGES := python3 python3-pip python3-venv systemd curl
# The integration tests run nginx, systemd-nspawn, promtool (prometheus), throwaway PostgreSQL
# clusters (TokenTestSupport's PostgresCluster) and, as root, network namespaces (iproute2's ip);
# policy-rc.d keeps Debian's nginx, prometheus and postgresql from starting a daemon while they
# install.
INTEGRATION_PACKAGES := nginx systemd-container prometheus postgresql iproute2
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
PYTHON_TEST_PACKAGES := 'pyjwt>=2.10' 'cryptography>=41'
# schemathesis (PyPI) checks openapi.yaml against a running tokend (.ci/schemathesis.sh). It
# lives in a virtualenv of its own, pinned, so the system's Python packages stay as they are.
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS_VENV := .build/schemathesis-venv

APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: build release run fleet fleet-stop test lint deps test-deps install uninstall bench bench-daemon bench-fleet \
	fuzz clean help

help:
	@echo "make run        build and start tokend in the foreground with dev defaults (./run, ./var, ./keys)"
	@echo "make fleet      PostgreSQL in ./var/pg and three tokend nodes on ./run/node{1,2,3}.sock (make fleet-stop)"
	@echo "make build      debug build of every target"
	@echo "make test       install what the tests need, lint, strict build, run every test"
	@echo "make lint       swift-format lint --strict and the Package.swift import check"
	@echo "make release    optimised, statically linked Swift runtime; jwt-inspect fully static"
	@echo "make install    install binaries and shell completions (PREFIX=$(PREFIX), DESTDIR=)"
	@echo "make bench      run Benchmarks/run.sh (see BENCHMARKS.md)"
	@echo "make bench-daemon  run Benchmarks/daemon.sh: tokend beside nginx, SwiftNIO and libargon2"
	@echo "make bench-fleet   run Benchmarks/fleet.sh: propagation across three nodes on one PostgreSQL"
	@echo "make fuzz       libFuzzer over the parsers, FUZZ_SECONDS (60) each (FUZZING.md)"

## deps: install the Debian packages the build needs, only if some are missing.
deps:
	@missing=""; for p in $(BUILD_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing; \
	fi

## test-deps: deps plus what the tests drive (PyJWT for interop, schemathesis for openapi.yaml).
test-deps: deps
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing; \
	fi
	@missing=""; for p in $(INTEGRATION_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; added=; \
		[ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; $(SUDO) chmod 755 /usr/sbin/policy-rc.d; added=1; }; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing; \
		[ -z "$$added" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d; \
	fi
	@python3 -c 'import jwt, cryptography, sys; sys.exit(tuple(map(int, jwt.__version__.split(".")[:2])) < (2, 10))' >/dev/null 2>&1 || { \
		python3 -m pip --version >/dev/null 2>&1 || { $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends python3-pip; }; \
		echo "installing PyJWT and cryptography with pip"; \
		python3 -m pip install --quiet --disable-pip-version-check --upgrade $(PYTHON_TEST_PACKAGES) \
		|| python3 -m pip install --quiet --disable-pip-version-check --upgrade --break-system-packages $(PYTHON_TEST_PACKAGES); }
	@[ "$$($(SCHEMATHESIS_VENV)/bin/schemathesis --version 2>/dev/null)" = "schemathesis, version $(SCHEMATHESIS_VERSION)" ] || { \
		echo "installing schemathesis $(SCHEMATHESIS_VERSION) with pip into $(SCHEMATHESIS_VENV)"; \
		rm -rf $(SCHEMATHESIS_VENV) && python3 -m venv $(SCHEMATHESIS_VENV) \
		&& $(SCHEMATHESIS_VENV)/bin/pip install --quiet --disable-pip-version-check 'schemathesis==$(SCHEMATHESIS_VERSION)'; }

build: deps
	$(SWIFT) build

## run: tokend in the foreground with the embedded SQLite store and dev keys; Ctrl-C stops it.
run: deps
	$(SWIFT) build --product tokend
	$(SWIFT) build --product tokenctl
	$(SWIFT) build --product jwt-inspect
	@mkdir -p run var keys && chmod 700 var keys && chmod go-w run
	@printf '%s\n' \
	  "" \
	  "tokend starts below: API socket ./run/tokend.sock, admin socket ./run/tokend-admin.sock," \
	  "store ./var/tokend.db, keys ./keys (generated on first start). Try, in another terminal here:" \
	  "" \
	  "  TOKEN=\$$(.build/debug/tokenctl token issue --sub alice --scope 'read write')" \
	  "  curl --unix-socket ./run/tokend.sock -d \"token=\$$TOKEN\" http://localhost/oauth2/introspect" \
	  "  curl --unix-socket ./run/tokend.sock -i -H \"Authorization: Bearer \$$TOKEN\" http://localhost/v1/verify" \
	  "  curl --unix-socket ./run/tokend.sock http://localhost/.well-known/jwks.json" \
	  "  curl --unix-socket ./run/tokend-admin.sock -H 'Content-Type: application/json' -d '{\"sub\":\"bob\",\"refresh\":true}' http://localhost/admin/tokens" \
	  "  curl --unix-socket ./run/tokend.sock -d \"token=\$$TOKEN\" http://localhost/oauth2/revoke" \
	  "  .build/debug/tokenctl status" \
	  "  .build/debug/jwt-inspect --jwks <(curl -s --unix-socket ./run/tokend.sock http://localhost/.well-known/jwks.json) \"\$$TOKEN\"" \
	  ""
	TOKEND_SOCKET=./run/tokend.sock TOKEND_ADMIN_SOCKET=./run/tokend-admin.sock \
	TOKEND_STORE=sqlite:./var/tokend.db TOKEND_KEYS_DIR=./keys TOKEND_JWKS_MAX_AGE=60s \
	exec .build/debug/tokend

## fleet: a local PostgreSQL in ./var/pg and three nodes on ./run/node1.sock … ./run/node3.sock,
## in the background (scripts/fleet.sh); it prints what to try and how to stop them (make fleet-stop).
fleet: deps
	@missing=""; for p in postgresql curl; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; added=; \
		[ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; $(SUDO) chmod 755 /usr/sbin/policy-rc.d; added=1; }; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing; \
		[ -z "$$added" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d; \
	fi
	$(SWIFT) build --product tokend
	$(SWIFT) build --product tokenctl
	@bash scripts/fleet.sh start

fleet-stop:
	@bash scripts/fleet.sh stop

# jwt-inspect ships as one static executable (Swift runtime, libcrypto from libssl-dev and
# glibc linked in): it starts in about a millisecond, where the dynamically linked build
# spends 2-3 ms in the loader (BENCHMARKS.md). The flag applies to everything a build
# compiles, so that product gets its own scratch directory.
JWT_INSPECT_FLAGS := -c release --static-swift-stdlib -Xswiftc -static-executable --scratch-path .build-static
JWT_INSPECT := .build-static/release/jwt-inspect

release: deps
	$(SWIFT) build $(RELEASE_FLAGS)
	$(SWIFT) build $(JWT_INSPECT_FLAGS) --product jwt-inspect

## fuzz: libFuzzer over the HTTP request parser, the JSON parser, the compact JWS parser and the
## form scanner (Tests/Fuzz, FUZZING.md), FUZZ_SECONDS each (60). Inputs it finds go to
## .build/fuzz-corpus, crashes to .build/fuzz-artifacts; the seed corpus is Tests/Fuzz/Corpus.
FUZZ_TARGETS := http json jws form
FUZZ_SECONDS ?= 60
# swiftc's -sanitize=fuzzer links libFuzzer's own main, which SwiftPM's renamed entry point of
# an executable clashes with: instrument with sanitizer coverage, and link the runtime without
# its main (each target starts LLVMFuzzerRunDriver itself).
FUZZ_RUNTIME = $(firstword $(wildcard $(dir $(realpath $(shell command -v $(SWIFT))))../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a))
FUZZ_FLAGS = -c release -Xswiftc -sanitize=address \
	-Xswiftc -sanitize-coverage=edge,indirect-calls,trace-cmp,inline-8bit-counters,pc-table \
	-Xswiftc -enable-testing -Xlinker $(FUZZ_RUNTIME) -Xlinker -lstdc++

fuzz: deps
	@[ -n "$(FUZZ_RUNTIME)" ] || { echo "libclang_rt.fuzzer_no_main not found beside $(SWIFT)"; exit 1; }
	$(SWIFT) build --package-path Tests/Fuzz --scratch-path $(CURDIR)/.build/fuzz $(FUZZ_FLAGS)
	@failed=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p .build/fuzz-corpus/$$t .build/fuzz-artifacts/$$t; \
		echo "== fuzz-$$t for $(FUZZ_SECONDS) s"; \
		.build/fuzz/release/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=.build/fuzz-artifacts/$$t/ .build/fuzz-corpus/$$t Tests/Fuzz/Corpus/$$t \
			> .build/fuzz-artifacts/$$t/last-run.log 2>&1 || failed="$$failed $$t"; \
		grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)|invariant broken|ERROR' \
			.build/fuzz-artifacts/$$t/last-run.log; \
	done; \
	[ -z "$$failed" ] || { echo "fuzzing found crashes in:$$failed (see .build/fuzz-artifacts)"; exit 1; }

# Every test target, each run in its own `swift test` process: tests that spawn long-lived
# daemons cannot then hold another target's pipes open.
TEST_TARGETS := $(filter-out TokenTestSupport Fuzz,$(notdir $(wildcard Tests/*)))

# The strict build: no warning anywhere in the package's own code, and no import of a module
# outside a target's dependencies (.ci/check-manifest.py also refuses undeclared and unused ones).
STRICT_FLAGS := -Xswiftc -warnings-as-errors --explicit-target-dependency-import-check error

## lint: the repository's .swift-format over Sources, Tests and Benchmarks, and the manifest check.
lint:
	$(SWIFT) format lint --strict --parallel -r Sources Tests Benchmarks Package.swift
	python3 .ci/check-manifest.py

test: test-deps lint
	$(SWIFT) build --build-tests $(STRICT_FLAGS)
	@mkdir -p .build/test-logs; passed=0; failed=""; \
	for t in $(TEST_TARGETS); do \
		echo "== $$t"; \
		if $(SWIFT) test --skip-build --filter "^$$t\." </dev/null 2>&1 | tee .build/test-logs/$$t.log; \
			[ "$${PIPESTATUS[0]}" = 0 ]; then passed=$$((passed + 1)); else failed="$$failed $$t"; fi; \
	done; \
	echo "== schemathesis: openapi.yaml against a running tokend (.ci/schemathesis.sh)"; \
	if bash .ci/schemathesis.sh </dev/null 2>&1 | tee .build/test-logs/schemathesis.log; \
		[ "$${PIPESTATUS[0]}" = 0 ]; then passed=$$((passed + 1)); else failed="$$failed schemathesis"; fi; \
	for t in $$failed; do \
		echo "== what failed in $$t (all of it: .build/test-logs/$$t.log)"; \
		if [ "$$t" = schemathesis ]; then \
			grep -E '^(_{4,} |[0-9]+\. Test Case|- ST|    Invalid component|\[[0-9]{3}\]|    `|    curl |== |schemathesis.sh:)' \
				.build/test-logs/$$t.log | cut -c1-400 | head -60; \
		else \
			grep -E '✘|error:|fatal|Fatal|crash' .build/test-logs/$$t.log | grep -v ' failed after ' | cut -c1-400 | head -40; \
		fi; \
	done; \
	[ -z "$$failed" ] || echo "failing test targets:$$failed"; \
	echo "targets: $$passed passed, $$(echo $$failed | wc -w) failed"; \
	[ -z "$$failed" ]

install: release
	install -d $(BINDIR)
	install -m 0755 $(JWT_INSPECT) $(BINDIR)/jwt-inspect
	install -m 0755 .build/release/tokend .build/release/tokenctl $(BINDIR)/
	install -d $(UNITDIR) $(SYSUSERSDIR) $(TMPFILESDIR) $(CONFDIR)
	install -m 0644 systemd/tokend.service systemd/tokend.socket systemd/tokend-admin.socket $(UNITDIR)/
	install -m 0644 systemd/tokend.sysusers $(SYSUSERSDIR)/tokend.conf
	install -m 0644 systemd/tokend.tmpfiles $(TMPFILESDIR)/tokend.conf
	test -e $(CONFDIR)/tokend.env || install -m 0640 systemd/tokend.env $(CONFDIR)/tokend.env
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemd-sysusers tokend.conf && systemd-tmpfiles --create tokend.conf && systemctl daemon-reload; fi
	install -d $(SHAREDIR)/bash-completion/completions $(SHAREDIR)/zsh/site-functions $(SHAREDIR)/fish/vendor_completions.d
	$(JWT_INSPECT) --generate-completion-script bash > $(SHAREDIR)/bash-completion/completions/jwt-inspect
	$(JWT_INSPECT) --generate-completion-script zsh > $(SHAREDIR)/zsh/site-functions/_jwt-inspect
	$(JWT_INSPECT) --generate-completion-script fish > $(SHAREDIR)/fish/vendor_completions.d/jwt-inspect.fish

uninstall:
	rm -f $(BINDIR)/tokend $(BINDIR)/tokenctl $(UNITDIR)/tokend.service $(UNITDIR)/tokend.socket \
		$(UNITDIR)/tokend-admin.socket $(SYSUSERSDIR)/tokend.conf $(TMPFILESDIR)/tokend.conf
	rm -f $(BINDIR)/jwt-inspect $(SHAREDIR)/bash-completion/completions/jwt-inspect \
		$(SHAREDIR)/zsh/site-functions/_jwt-inspect $(SHAREDIR)/fish/vendor_completions.d/jwt-inspect.fish

bench: deps
	bash Benchmarks/run.sh

bench-daemon: deps
	bash Benchmarks/daemon.sh

bench-fleet: deps
	bash Benchmarks/fleet.sh

clean:
	$(SWIFT) package clean

# certctl — see README.md. `make dev` and `make test` are the quick start.
SHELL := /bin/bash
TEMPORAL_VERSION := v1.5.1
CERTCTL_TOOLS ?= $(HOME)/.cache/certctl/tools
TEMPORAL_BIN := $(CERTCTL_TOOLS)/temporal-$(TEMPORAL_VERSION)/temporal
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(CERTCTL_TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
TRAEFIK_VERSION := v3.6.12
TRAEFIK_BIN := $(CERTCTL_TOOLS)/traefik-$(TRAEFIK_VERSION)/traefik
PEBBLE_VERSION := v2.10.3
PEBBLE_BIN := $(CERTCTL_TOOLS)/pebble-$(PEBBLE_VERSION)/pebble
KUBE_VERSION := v1.31.0
KUBE_APISERVER_BIN := $(CERTCTL_TOOLS)/kube-apiserver-$(KUBE_VERSION)/kube-apiserver
export CERTCTL_TOOLS

.PHONY: build dev test unit bench bench-compare deps temporal traefik pebble kube-apiserver apt-deps lint fmt record-histories clean

build:
	go build -o bin/certctl ./starter
	go build -o bin/certctl-worker ./worker

# The temporal CLI, built once from the Go module proxy into a cache outside
# the repo and reused while the version matches (about 10 minutes cold).
temporal: $(TEMPORAL_BIN)
$(TEMPORAL_BIN):
	@echo "building the temporal CLI $(TEMPORAL_VERSION) from the Go module proxy (about 10 minutes, once)"
	mkdir -p $(dir $@)
	GOBIN=$(dir $@) go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

# pebble, Let's Encrypt's test ACME server, for testsuite's ACME tests (a
# real ACME client issuing real chains): built once from the Go module proxy
# into the tool cache, reused while the version matches (testsuite.PebbleVersion).
pebble: $(PEBBLE_BIN)
$(PEBBLE_BIN):
	mkdir -p $(dir $@)
	GOBIN=$(dir $@) go install github.com/letsencrypt/pebble/v2/cmd/pebble@$(PEBBLE_VERSION)

# traefik has no Debian package and `go install` refuses it (its go.mod has
# replace directives), so a throwaway wrapper module in a temp dir requires it
# with the same `containous` fork replaces as traefik's own go.mod (read from
# the module cache) and builds its cmd (about 11 minutes cold). The binary is
# cached outside the repo and reused while the version matches.
traefik: $(TRAEFIK_BIN)
$(TRAEFIK_BIN):
	@echo "building traefik $(TRAEFIK_VERSION) from the Go module proxy (about 11 minutes, once)"
	@set -euo pipefail; w=$$(mktemp -d); trap 'rm -rf "$$w"' EXIT; cd "$$w"; \
	mod=github.com/traefik/traefik/v3; \
	dir=$$(go mod download -json $$mod@$(TRAEFIK_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$$/\1/p'); \
	test -f "$$dir/go.mod" || { echo "traefik's go.mod not found in the module cache" >&2; exit 1; }; \
	{ echo "module certctl.local/traefik-build"; echo; \
	  sed -n 's/^go \(1\.[0-9.]*\)$$/go \1/p' "$$dir/go.mod"; echo; \
	  echo "require $$mod $(TRAEFIK_VERSION)"; echo; \
	  grep -E '^[[:space:]]*[^[:space:]]+ => github\.com/containous/' "$$dir/go.mod" | sed 's/^[[:space:]]*/replace /'; \
	} > go.mod; \
	printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/traefik"\n' $$mod > tools.go; \
	cat go.mod; \
	go mod tidy; \
	mkdir -p $(dir $@); \
	go build -trimpath -ldflags "-X $$mod/pkg/version.Version=$(TRAEFIK_VERSION)" -o $@.tmp $$mod/cmd/traefik; \
	mv $@.tmp $@

# kube-apiserver, for the kubernetes connector's tests (a real apiserver on
# loopback, with Debian's etcd): no Debian package, and `go install` refuses it
# (k8s.io/kubernetes replaces its staging modules with ./staging paths). So a
# throwaway wrapper module requires k8s.io/kubernetes and replaces each staging
# module it lists with the published v0.X.Y of the same release, then builds
# cmd/kube-apiserver (about 11 minutes cold on 2 cores). gitVersion is set so
# clients parse the server's version. Cached outside the repo, reused while
# the version matches (testsuite.KubeVersion).
kube-apiserver: $(KUBE_APISERVER_BIN)
$(KUBE_APISERVER_BIN):
	@echo "building kube-apiserver $(KUBE_VERSION) from the Go module proxy (about 11 minutes, once)"
	@set -euo pipefail; w=$$(mktemp -d); trap 'rm -rf "$$w"' EXIT; cd "$$w"; \
	mod=k8s.io/kubernetes; staging=$(patsubst v1.%,v0.%,$(KUBE_VERSION)); \
	dir=$$(go mod download -json $$mod@$(KUBE_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$$/\1/p'); \
	test -f "$$dir/go.mod" || { echo "kubernetes' go.mod not found in the module cache" >&2; exit 1; }; \
	{ echo "module certctl.local/kube-apiserver-build"; echo; \
	  sed -n 's/^go \(1\.[0-9.]*\)$$/go \1/p' "$$dir/go.mod"; echo; \
	  echo "require $$mod $(KUBE_VERSION)"; echo; \
	  sed -n 's/^[[:space:]]*\(k8s\.io\/[^[:space:]]*\) => \.\/staging\/.*$$/replace \1 => \1 '"$$staging"'/p' "$$dir/go.mod"; \
	} > go.mod; \
	printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/kube-apiserver"\n' $$mod > tools.go; \
	cat go.mod; \
	go mod tidy -e; \
	mkdir -p $(dir $@); \
	go build -trimpath -ldflags "-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION)" -o $@.tmp $$mod/cmd/kube-apiserver; \
	mv $@.tmp $@

# Debian packages the product and its tests drive for real: package=file it
# installs. Only the missing ones are installed; postfix's debconf question is
# answered first ("No configuration": the tests write their own). Installing
# starts no service here: the tests start each server privately.
APT_PACKAGES := nginx=/usr/sbin/nginx apache2=/usr/sbin/apache2 haproxy=/usr/sbin/haproxy \
	postfix=/usr/sbin/postfix dovecot-imapd=/usr/lib/dovecot/imap-login caddy=/usr/bin/caddy \
	systemd=/usr/bin/systemd-analyze openssh-server=/usr/sbin/sshd etcd-server=/usr/bin/etcd \
	openjdk-17-jdk-headless=/usr/bin/javac openssl=/usr/bin/openssl
apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do test -e "$${p#*=}" || missing="$$missing $${p%%=*}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian:$$missing"; \
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

$(STATICCHECK):
	mkdir -p $(dir $@)
	GOBIN=$(dir $@) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

deps: apt-deps temporal traefik pebble kube-apiserver $(STATICCHECK)

# The embedded default needs only nginx and the temporal CLI (not traefik).
dev: apt-deps temporal build
	bin/certctl dev

# Everything, integration tests included (a real dev server, real workers,
# a real nginx); nothing skips. testsuite alone runs about 12 minutes on 2
# cores, past go test's default 10-minute timeout.
test: deps lint
	go test -count=1 -timeout 45m ./...

# Unit tests only: no temporal CLI, no real servers. Under -short testsuite's
# TestMain starts nothing and exits 0 (its tests are integration tests).
unit:
	go test -count=1 -short ./...

bench: deps
	go test -timeout 30m -run '^$$' -bench . -benchtime 1x ./testsuite/

# Before and after on this machine in one run: the benchmark of BASE (a git
# revision, checked out in a temporary worktree) and then of this tree,
# one after the other, each with its own dev server, workers and nginx.
BASE ?= be059f6
bench-compare: deps
	@set -euo pipefail; w=$$(mktemp -d); git worktree add -q --detach "$$w" $(BASE); \
	trap 'git worktree remove --force "$$w"' EXIT; \
	echo "== before: $(BASE) ($$(git log -1 --format=%s $(BASE) | cut -c1-60))"; \
	(cd "$$w" && go test -timeout 30m -run '^$$' -bench . -benchtime 1x ./testsuite/ | sed -n '/^certctl bench/,/^a group alone/p'); \
	echo "== after: $$(git rev-parse --short HEAD) and the working tree"; \
	go test -timeout 30m -run '^$$' -bench . -benchtime 1x ./testsuite/ | sed -n '/^certctl bench/,/^a group alone/p'

record-histories: deps
	CERTCTL_RECORD_HISTORIES=1 go test -count=1 -timeout 45m -run 'TestIntegration' ./testsuite/

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet ./...
	$(STATICCHECK) ./...

fmt:
	gofmt -w .

clean:
	rm -rf bin

# irsa: build, test and check. `make check` is what CI runs (.ci/run calls it).
SHELL := /bin/bash
GO ?= go
BIN := bin/irsa

.PHONY: build image test lint check deps dagger-check kubernetes test-docker e2e demo fuzz-short gate-image release-snapshot kind-images e2e-kind

# The version irsa reports and tags its default image with: the tag on HEAD, or "dev" (internal/version).
VERSION ?= $(shell git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/irsa-anywhere/irsa/internal/version.version=$(VERSION) -X github.com/irsa-anywhere/irsa/internal/version.commit=$(COMMIT)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/irsa

# The irsa image (static binary on an empty base, user 65532) as an OCI tarball, without a Docker daemon:
# `ctr -n k8s.io images import _output/irsa-image.tar` or `kind load image-archive _output/irsa-image.tar`.
# Named as the binary names its own default image: ghcr.io/irsa-anywhere/irsa:$(VERSION).
IMAGE ?= ghcr.io/irsa-anywhere/irsa:$(VERSION)
image:
	mkdir -p _output
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o _output/irsa ./cmd/irsa
	$(GO) run ./hack/image -ref $(IMAGE) -binary _output/irsa -o _output/irsa-image.tar

# The strict STS gate as an image for other projects (testcontainers/stsgate runs it): irsa's static binary on an
# empty base, entrypoint `irsa sts-gate`, user 65532, without a Docker daemon. `docker load -i _output/sts-gate-image.tar`.
GATE_IMAGE ?= ghcr.io/irsa-anywhere/sts-gate:$(VERSION)
gate-image:
	mkdir -p _output
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o _output/irsa ./cmd/irsa
	$(GO) run ./hack/image -ref $(GATE_IMAGE) -binary _output/irsa -path /usr/local/bin/irsa \
		-entrypoint /usr/local/bin/irsa -entrypoint sts-gate -cmd --listen -cmd 0.0.0.0:4567 -o _output/sts-gate-image.tar

# The release without publishing: goreleaser's snapshot (linux and darwin, amd64 and arm64, archives, checksums,
# SBOMs) and the multi-arch image as an OCI layout in _output/release, then tests of those outputs. Signing and
# pushing run only in .github/workflows/release.yml.
release-snapshot:
	hack/release/snapshot.sh

# Unit and integration tests: moto_server (preinstalled on the build machines) and, where present, a real
# kube-apiserver built by hack/build-kubernetes.sh.
test: kubernetes
	$(GO) test -count=1 -timeout 30m ./...

# Kubernetes, etcd and the pod identity webhook built from the Go module proxy into ~/.cache/irsa (15-25 min cold,
# seconds when cached): tests run a real kube-apiserver, the e2e a real kubeadm cluster.
kubernetes:
	hack/build-kubernetes.sh

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	hack/actionlint.sh

# The IRSA scenario end to end (as root). E2E_CLUSTER=host (default: a kubeadm cluster built here, in a network
# namespace) or kind; E2E_AWS=moto (default, behind the strict STS gate), localstack or aws (IRSA_E2E_REAL_AWS=1).
# kind goes through hack/kind/e2e.sh: without DOCKER_HOST it starts the private dockerd and builds the node and
# emulator images here (nothing can be pulled); with DOCKER_HOST (GitHub) it runs the published images.
# KEEP=1 leaves the cluster running; logs land in $$E2E_ARTIFACTS on failure.
# hack/build-kubernetes.sh reports each binary and the elapsed time on stderr (15-40 min cold); stdout is its bin dir.
e2e:
	@if [ "$${E2E_CLUSTER:-host}" = kind ]; then exec hack/kind/e2e.sh; fi; \
	if [ "$${E2E_CLUSTER:-host}" = host ]; then hack/e2e/install-deps.sh && hack/build-kubernetes.sh >/dev/null; fi; \
	$(GO) test -tags e2e -count=1 -v -timeout 45m ./e2e/scenario/

# The images the kind e2e runs where nothing can be pulled (as root, DOCKER_HOST set): the node image and the
# LocalStack image, built from pinned versions and cached.
kind-images:
	hack/kind/build-node.sh
	hack/kind/build-emulator.sh localstack

# The main job on an embedded default (as root): a kubeadm cluster and moto on this machine, irsa apply, bind and
# verify with their progress and the verify report, then teardown. KEEP=1 keeps it running until Ctrl-C.
demo:
	@if [ "$${E2E_CLUSTER:-host}" = host ]; then hack/e2e/install-deps.sh && hack/build-kubernetes.sh >/dev/null; fi
	$(GO) run ./e2e/demo

# The testcontainers-go code path, for real, against a private dockerd the script starts and stops.
test-docker:
	hack/docker/test.sh

deps:
	hack/install-deps.sh

# A short fuzz run (FUZZTIME per target, two workers) of the token parser, the NumericDate rule, the trust-policy
# evaluator, StringLike's matcher and the gate's parameter rules. Seed corpora live in testdata/fuzz of each package;
# a failure writes its input there, which `go test` then replays on every run.
FUZZTIME ?= 5s
FUZZ_TARGETS := pipeline/trust:FuzzParseToken pipeline/trust:FuzzNumericDate pipeline/trust:FuzzEvaluateTrustPolicy \
	pipeline/trust:FuzzGlob pipeline/stsgate:FuzzRequestParameters
fuzz-short:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		$(GO) test ./$${t%%:*}/ -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -parallel 2; \
	done

# The Dagger module (ci/): generated offline with the pinned codegen, built, vetted and tested against a fake engine.
dagger-check:
	hack/dagger/check.sh

# The same scenario on kind with LocalStack (node and emulator images built here: hack/kind).
e2e-kind:
	E2E_CLUSTER=kind E2E_AWS=localstack $(MAKE) e2e

check: deps lint test fuzz-short test-docker dagger-check release-snapshot e2e e2e-kind

# irsa: build, test and check. `make check` is what CI runs (.ci/run calls it).
SHELL := /bin/bash
GO ?= go
BIN := bin/irsa

.PHONY: build image test lint check deps dagger-check kubernetes test-docker e2e demo kind-images

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/irsa

# The irsa image (static binary on an empty base, user 65532) as an OCI tarball, without a Docker daemon:
# `ctr -n k8s.io images import _output/irsa-image.tar` or `kind load image-archive _output/irsa-image.tar`.
IMAGE ?= ghcr.io/irsa-anywhere/irsa:v0.1.0
image:
	mkdir -p _output
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o _output/irsa ./cmd/irsa
	$(GO) run ./hack/image -ref $(IMAGE) -binary _output/irsa -o _output/irsa-image.tar

# Unit and integration tests: moto_server (preinstalled on the build machines) and, where present, a real
# kube-apiserver built by hack/build-kubernetes.sh.
test: kubernetes
	$(GO) test -count=1 ./...

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

# The Dagger module (ci/): generated offline with the pinned codegen, built, vetted and tested against a fake engine.
dagger-check:
	hack/dagger/check.sh

check: deps lint test test-docker dagger-check e2e

# Thin wrapper over CMake so `make`, `make test` and `make run` work from a fresh clone.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build test checksrc unit e2e conformance run deps clean format asan asan-test fuzz install image-test

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_EXTRA) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Installs bin/mcpgate (and bin/mcpgate-testserver), the systemd unit and the docs into PREFIX;
# DESTDIR stages the tree elsewhere (packaging). README.md "Install and a first config".
PREFIX ?= /usr/local
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# The container image's targets built without Docker (mmdebstrap, chroot as uid 10001 under tini)
# serving the bundled test server and a real npm server; slow (minutes, the root filesystems are
# cached in /var/tmp/mcpgate-image-test). Needs root and Debian/npm network access. docs/testing.md.
image-test: build
	./test/image/run.sh $(BUILD) $(IMAGE_TARGETS)

deps:
	./scripts/install-deps.sh

# Runs the gateway on the embedded default config (fronts build/mcpgate-testserver).
run: build
	./$(BUILD)/mcpgate serve

# Source rules (scripts/checksrc.sh: no literal -32xxx outside the error table, no sprintf...), no build.
checksrc:
	./scripts/checksrc.sh && ./test/checksrc/run.sh

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

e2e: build
	./scripts/e2e.sh $(BUILD)

test: build
	./scripts/test.sh $(BUILD)

asan:
	$(MAKE) BUILD=build-asan build CMAKE_EXTRA=-DMG_SANITIZE=ON

# Unit + e2e tests on the ASan/UBSan build, LeakSanitizer at the gateway's exit (docs/testing.md).
asan-test:
	./scripts/asan.sh build-asan

# Every libFuzzer target for FUZZ_SECONDS each (clang; build-fuzz/). FUZZ_TARGETS="http sse" for some.
FUZZ_SECONDS ?= 60
fuzz:
	./scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

# Benchmarks against the peers (bench/run.sh: mcpgate, mcp-proxy, supergateway, bare h2o; results in
# bench/results/). QUICK=1 make bench is a smoke run under 2 minutes.
.PHONY: bench
bench:
	BUILD=$(BUILD) ./bench/run.sh

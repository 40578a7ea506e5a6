# renkei — the two commands of the README:
#   make demo    builds renkei and runs `renkei demo`
#   make check   runs every test twice: a normal build, and one under
#                AddressSanitizer + UndefinedBehaviorSanitizer
# Both install the Debian packages they need first (scripts/install-deps.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?= --output-on-failure -j2
SAN_ENV     = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
              UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 RENKEI_SANITIZED=1

.PHONY: all deps build build-asan demo check check-normal check-asan bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRENKEI_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

demo: build
	./$(BUILD)/renkei demo

check: check-normal check-asan

check-normal: build
	cd $(BUILD) && ctest $(CTEST_ARGS)

check-asan: build-asan
	cd $(ASAN_BUILD) && $(SAN_ENV) ctest $(CTEST_ARGS)

bench: build
	./$(BUILD)/renkei bench codes

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# The Debian package (debian/): `make deb` builds build-deb/renkei_<version>_<arch>.deb
# with dpkg-buildpackage and runs lintian (no error, no warning); `make check-deb`
# also installs it and runs it as an operator would (scripts/check-deb.sh: as
# root, on a test machine).
.PHONY: deb check-deb

deb:
	@scripts/build-deb.sh

check-deb:
	@scripts/check-deb.sh

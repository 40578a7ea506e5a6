# renkei — the two commands of the README:
#   make demo    builds renkei and runs `renkei demo`
#   make check   runs every test twice: a normal build, and one under
#                AddressSanitizer + UndefinedBehaviorSanitizer; then runs each
#                libFuzzer harness of tests/fuzz for 20 s (check-fuzz)
# Both install the Debian packages they need first (scripts/install-deps.sh).
# Also: make fuzz FUZZ_SECONDS=N   builds the harnesses with clang-14 and runs
#                                  each N s (default 60); see scripts/fuzz.sh
#       make crash ROUNDS=N          the crash-kill suite (tests/crash/crash.py): N nodes
#                                    SIGKILLed under load (default 30), then nothing
#                                    acknowledged lost or doubled; RENKEI_TEST_STORE=postgres
#                                    runs it on PostgreSQL; CRASH_ARGS=--ha on PostgreSQL
#                                    under Patroni (the primary and Patroni killed too)

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC    ?= clang-14
ROUNDS     ?= 30
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?= --output-on-failure -j2
SAN_ENV     = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
              UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 RENKEI_SANITIZED=1

.PHONY: all deps build build-asan build-fuzz demo check check-normal check-asan check-fuzz fuzz bench crash clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRENKEI_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

build-fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=$(FUZZ_CC) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRENKEI_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)

demo: build
	./$(BUILD)/renkei demo

check: check-normal check-asan check-fuzz

check-normal: build
	cd $(BUILD) && ctest $(CTEST_ARGS)

check-asan: build-asan
	cd $(ASAN_BUILD) && $(SAN_ENV) ctest $(CTEST_ARGS)

check-fuzz: build-fuzz
	scripts/fuzz.sh $(FUZZ_BUILD) 20

fuzz: build-fuzz
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	./$(BUILD)/renkei bench codes

crash: build
	RENKEI_BIN=$(CURDIR)/$(BUILD)/renkei python3 -u tests/crash/crash.py --rounds $(ROUNDS) $(CRASH_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# The Debian package (debian/): `make deb` builds build-deb/renkei_<version>_<arch>.deb
# with dpkg-buildpackage and runs lintian (no error, no warning); `make check-deb`
# also installs it and runs it as an operator would (scripts/check-deb.sh: as
# root, on a test machine).
.PHONY: deb check-deb

deb:
	@scripts/build-deb.sh

check-deb:
	@scripts/check-deb.sh

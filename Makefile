# Entry points: `make demo` runs the main job, `make test` builds and runs the whole suite.
# Both install missing Debian packages first (scripts/install-deps.sh).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# CI builds `make test` as Release with -DDEJA_WERROR=ON: g++ 12 warns at -O3 about things -O2 hides.
BUILD_TYPE ?= RelWithDebInfo

.PHONY: all deps configure build test demo bench kv-bench asan tsan warnings clang-test fuzz clean

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@$(BUILD)/examples/deja-demo

bench: deps
	@cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEJA_BUILD_TESTS=OFF >/dev/null
	@cmake --build build-release -j $(JOBS) --target deja-bench
	@for b in spawn_join chained_spawn yield_many ping_pong mpsc_contended timer_churn; do \
	  build-release/bench/deja-bench $$b --rt ct || exit 1; done

# The kv example against Debian's redis-server with redis-benchmark (KV_REQUESTS per test).
KV_REQUESTS ?= 200000
kv-bench: deps
	@scripts/install-deps.sh redis-tools redis-server bc
	@cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEJA_BUILD_TESTS=OFF >/dev/null
	@cmake --build build-release -j $(JOBS) --target deja-kv
	@scripts/kv-bench.sh $(KV_REQUESTS)

# The suite under AddressSanitizer + UndefinedBehaviorSanitizer (g++, which also proves the Task
# await path does not rely on symmetric-transfer tail calls).
asan: deps
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDEJA_SANITIZE=address -DDEJA_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# The suite under ThreadSanitizer, built by clang 14 at -O1 (at -O0 the cross-thread stress tests
# are several times slower for no extra coverage), with every target compiled and warnings as
# errors, so it is also CI's clang 14 warning build. The whole suite runs, the [mt] stress tests
# included, but not the fuzz smoke test (single-threaded, and covered by asan).
tsan: deps
	@scripts/install-deps.sh clang-14
	@cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DDEJA_SANITIZE=thread -DDEJA_WERROR=ON >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --output-on-failure -j $(JOBS) -E '^fuzz\.'

# Everything compiled warning-free (-Werror) with g++ 12 and clang 14.
warnings: deps
	@scripts/install-deps.sh clang-14
	@cmake -S . -B build-werror-gcc -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEJA_WERROR=ON -DCMAKE_CXX_COMPILER=g++ >/dev/null
	@cmake --build build-werror-gcc -j $(JOBS)
	@cmake -S . -B build-werror-clang -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEJA_WERROR=ON -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
	@cmake --build build-werror-clang -j $(JOBS)

# The suite built by clang 14 at -O2 (it elides coroutine frames that g++ allocates).
clang-test: warnings
	@cd build-werror-clang && ctest --output-on-failure -j $(JOBS)

# The schedule fuzzer (fuzz/sim_schedule_fuzz.cpp): libFuzzer + ASan + UBSan with clang 14, run
# for FUZZ_TIME seconds; new inputs accumulate in build-fuzz/corpus-<target>. -O1 without -g: clang 14 can
# fail on coroutines with "Cannot represent a difference across sections" (see fuzz/CMakeLists.txt).
# FUZZ_ARGS=--planted-bug fuzzes the planted lost update instead, which it should find quickly.
# FUZZ_TARGET=resp-parser fuzzes the kv example's RESP2 parser instead.
FUZZ_TIME ?= 30
FUZZ_ARGS ?=
FUZZ_TARGET ?= sim-schedule
fuzz: deps
	@scripts/install-deps.sh clang-14
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DDEJA_SANITIZE=address -DDEJA_BUILD_FUZZ=ON -DDEJA_BUILD_TESTS=OFF -DDEJA_BUILD_BENCH=OFF -DDEJA_BUILD_EXAMPLES=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target deja-$(FUZZ_TARGET)-fuzz
	@mkdir -p build-fuzz/corpus-$(FUZZ_TARGET)
	@cd build-fuzz && UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 fuzz/deja-$(FUZZ_TARGET)-fuzz \
	  -max_total_time=$(FUZZ_TIME) -print_final_stats=1 $(FUZZ_ARGS) corpus-$(FUZZ_TARGET)

clean:
	rm -rf build build-release build-asan build-tsan build-werror-gcc build-werror-clang build-fuzz

# A thin wrapper over CMake; see README.md.
#   make        build into build/ (tool: build/sluice)
#   make check  the whole test suite, as CI runs it (scripts/check.sh)
#   make demo   the main job end to end (scripts/demo.sh)
#   make bench  sluice against its peers, every workload (bench/run.sh)
#   make fuzz   build the fuzz harnesses and run each for FUZZ_SECONDS
#               (default 60; scripts/fuzz.sh)
BUILD ?= build/dev
FUZZ_SECONDS ?= 60

.PHONY: all bench check demo fuzz clean format
all:
	cmake -S . -B $(BUILD) >/dev/null
	cmake --build $(BUILD) -j$$(nproc)
	@echo "built $(BUILD)/sluice"

check:
	bash scripts/check.sh

demo:
	bash scripts/demo.sh

bench:
	bash bench/run.sh

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

format:
	clang-format -i include/sluice/*.h lib/*.[ch] lib/*/*.[ch] src/*.[ch] \
	    tests/*.[ch] bench/*.c

clean:
	rm -rf build demo

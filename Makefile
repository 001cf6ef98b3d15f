# A thin wrapper over CMake; see README.md.
#   make        build into build/ (tool: build/sluice)
#   make check  the whole test suite, as CI runs it (scripts/check.sh)
#   make demo   the main job end to end (scripts/demo.sh)
#   make bench  sluice against its peers, every workload (bench/run.sh)
#   make bench-kinesis  Kinesis publish, ingest and end-to-end latency on
#               kinesalite (bench/kinesis.sh)
#   make fuzz   build the fuzz harnesses and run each for FUZZ_SECONDS
#               (default 60; scripts/fuzz.sh)
#   make install  build, then install under PREFIX (default /usr/local),
#               within DESTDIR if given: make install PREFIX=$HOME/.local
#   make deb    a Debian package (CPack) from a release build in
#               DEB_BUILD (default build/release)
BUILD ?= build/dev
FUZZ_SECONDS ?= 60
PREFIX ?= /usr/local
DESTDIR ?=
DEB_BUILD ?= build/release

.PHONY: all bench bench-kinesis check demo fuzz clean format install deb
all:
	cmake -S . -B $(BUILD) >/dev/null
	cmake --build $(BUILD) -j$$(nproc)
	@echo "built $(BUILD)/sluice"

install: all
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

deb:
	bash scripts/setup.sh build package
	cmake -S . -B $(DEB_BUILD) -DCMAKE_BUILD_TYPE=Release \
	    -DSLUICE_TESTS=OFF >/dev/null
	cmake --build $(DEB_BUILD) -j$$(nproc)
	cd $(DEB_BUILD) && cpack -G DEB
	@ls $(DEB_BUILD)/*.deb

check:
	bash scripts/check.sh

demo:
	bash scripts/demo.sh

bench:
	bash bench/run.sh

bench-kinesis:
	bash bench/kinesis.sh

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

format:
	clang-format -i include/sluice/*.h lib/*.[ch] lib/*/*.[ch] src/*.[ch] \
	    tests/*.[ch] bench/*.c

clean:
	rm -rf build demo

# elmo-c: the ELMo biLM in C.  `make` builds bin/elmo; `make test`, `make demo` and
# `make bench` first install any missing Debian package (scripts/install-deps.sh).
#
# Switches:  DEBUG=1 (-O0 -g)   SANITIZE=1 (address + undefined behaviour; any report aborts)
#            NATIVE=0 (no -march=native: code valgrind can decode; make memcheck uses it)
#            BUILD=DIR (objects, libelmo.a, test programs; default build)
#            BIN=DIR (elmo itself, default bin): give a switched build its own folders,
#            e.g. make test SANITIZE=1 BUILD=build/sanitize BIN=build/sanitize/bin (.ci/run)
#            MPI=1 (data-parallel training over MPI ranks: built with mpicc, Open MPI from
#            Debian, into build/mpi/bin/elmo; `make test` builds one when mpicc is there)
CC       ?= gcc
DEBUG    ?= 0
SANITIZE ?= 0
NATIVE   ?= 1
FUZZ     ?= 0
MPI      ?= 0
# an MPI build gets its own folders unless told otherwise: make MPI=1 -> build/mpi/bin/elmo
BUILD    ?= $(if $(filter 1,$(MPI)),build/mpi,build)
BIN      ?= $(if $(filter 1,$(MPI)),build/mpi/bin,bin)
# Where the reference fixtures live (tests read them in place, never copy them).
ELMO_FIXTURES ?= $(abspath ../shared/fixtures)
export ELMO_FIXTURES

# `elmo --version`: VERSION, plus `git describe --always --dirty` when this is a git checkout
# (e.g. 0.9.0+903113e-dirty).  Only tools/elmo.o sees it; $(BUILD)/version.txt changes, and
# elmo.o is rebuilt, only when the string does.
VERSION     := 0.9.0
GIT_VERSION := $(shell git describe --always --dirty 2>/dev/null)
ELMO_VERSION := $(VERSION)$(if $(GIT_VERSION),+$(GIT_VERSION))

MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# The OpenMP build of OpenBLAS: the pthread build's threads fight our OpenMP regions
# (docs/design.md section 11).  Linked by path with an rpath, whatever update-alternatives says.
BLAS_LIBDIR := /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_INCDIR := /usr/include/$(MULTIARCH)/openblas-pthread

PKGS     := hdf5 libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(DEBUG),1)
  OPT := -O0 -g
else
  OPT := -O3 -march=native -fno-trapping-math -g
endif
# make fuzz: the library instrumented for libFuzzer (with CC=clang; OpenMP through libgomp).
# Undefined behaviour aborts: recovered, UBSan only prints, and libFuzzer counts no crash.
ifeq ($(FUZZ),1)
  OPT += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  OMP := -fopenmp=libgomp
endif
OMP ?= -fopenmp
ifeq ($(NATIVE),0)
  OPT := $(filter-out -march=native,$(OPT))
endif
SAN_LDFLAGS :=
ifeq ($(SANITIZE),1)
  OPT += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  # Linked in statically, UBSan honours log_path as ASan does (with gcc's shared
  # libubsan next to libasan it writes to stderr whatever UBSAN_OPTIONS says).
  SAN_LDFLAGS := -static-libasan -static-libubsan
endif

ifeq ($(MPI),1)
  CC := mpicc
  MPI_FLAGS := -DELMO_MPI
endif

CFLAGS  := -std=c11 $(MPI_FLAGS) -D_DEFAULT_SOURCE $(OPT) $(OMP) -Wall -Wextra -Wshadow \
           -Wno-unused-parameter -MMD -MP -Isrc -Itrain -Itools -I$(BLAS_INCDIR) $(PKG_CFLAGS)
LDFLAGS := $(OPT) $(SAN_LDFLAGS) $(OMP)
LDLIBS  := $(PKG_LIBS) -L$(BLAS_LIBDIR) -Wl,-rpath,$(BLAS_LIBDIR) -l:libopenblas.so.0 -lsnappy -lz -lm

# Three layers, each including only itself and the layers below it (scripts/check-layers.sh):
# src/ the biLM, train/ what training adds, tools/ the commands and corpus preparation.
# The subcommands (cmd_*.c, elmo.c) go into $(BIN)/elmo; everything else into
# $(BUILD)/libelmo.a, which the tests link.  Every output lies under $(BUILD) or $(BIN).
CLI_SRC   := $(wildcard train/cmd_*.c tools/cmd_*.c) tools/elmo.c
LIB_SRC   := $(filter-out $(CLI_SRC),$(wildcard src/*.c train/*.c tools/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB       := $(BUILD)/libelmo.a
ELMO      := $(BIN)/elmo
TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_HARNESSES := $(filter-out tests/fuzz/fuzz_util.c,$(FUZZ_SRC))
TEST_UTIL := $(BUILD)/tests/testutil.o $(BUILD)/tests/naive.o $(FUZZ_SRC:%.c=$(BUILD)/%.o)

.PHONY: FORCE all deps test run-tests demo run-demo bench run-bench bench-corpus run-bench-corpus memcheck faults fuzz clean
# Keep the test objects (make would otherwise delete them as intermediates, rebuilding
# them next time and ending `make test` with an rm line).
.SECONDARY:
all: $(ELMO)

deps:
	@sh scripts/install-deps.sh

# Objects depend on the Makefile too: a change of flags (SANITIZE=1 linking) rebuilds.
$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/version.txt: FORCE
	@mkdir -p $(dir $@)
	@echo '$(ELMO_VERSION)' | cmp -s - $@ || echo '$(ELMO_VERSION)' > $@
$(BUILD)/tools/elmo.o: $(BUILD)/version.txt
$(BUILD)/tools/elmo.o: CFLAGS += -DELMO_VERSION='"$(ELMO_VERSION)"'
FORCE:

$(LIB): $(LIB_OBJ)
	ar rcs $@ $^

$(ELMO): $(CLI_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_UTIL) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_UTIL) $(LIB) $(LDLIBS) -lcmocka

# The packages must be present before pkg-config is asked, hence the second make.
# scripts/run-tests.sh runs every suite and ends with one line over all of them,
# "N passed, N failed, N skipped"; a suite that crashes counts as failed.  The tests
# run $(ELMO) (ELMO_BIN), so a switched build tests its own program.
test: deps
	@$(MAKE) --no-print-directory run-tests
# With mpicc present, an MPI build of elmo in $(BUILD)/mpi for tests/test_mpi.c (which
# reports itself skipped without one).
MPI_ELMO := $(if $(filter 0,$(MPI)),$(if $(shell command -v mpicc 2>/dev/null),$(BUILD)/mpi/bin/elmo))
run-tests: $(ELMO) $(TEST_BIN) $(MPI_ELMO)
	@sh scripts/check-layers.sh
	@ELMO_BIN=$(ELMO) ELMO_MPI_BIN=$(abspath $(MPI_ELMO)) sh scripts/run-tests.sh $(TEST_BIN)
$(BUILD)/mpi/bin/elmo: FORCE
	@$(MAKE) --no-print-directory MPI=1 BUILD=$(BUILD)/mpi BIN=$(BUILD)/mpi/bin $(BUILD)/mpi/bin/elmo

demo: deps
	@$(MAKE) --no-print-directory run-demo
run-demo: $(ELMO)
	@ELMO=$(ELMO) sh scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory run-bench
run-bench: $(ELMO)
	@ELMO=$(ELMO) sh scripts/bench.sh

# libFuzzer on every harness of tests/fuzz for FUZZ_SECONDS each (default 60); new inputs
# worth keeping go to tests/fuzz/<harness>/, which make test replays
FUZZ_SECONDS ?= 60
fuzz: deps
	@$(MAKE) --no-print-directory CC=clang FUZZ=1 BUILD=build/fuzz BIN=build/fuzz/bin build/fuzz/libelmo.a \
	  $(FUZZ_SRC:%.c=build/fuzz/%.o)
	@for h in $(FUZZ_HARNESSES:tests/fuzz/fuzz_%.c=%); do \
	  clang -std=c11 -D_DEFAULT_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -fopenmp=libgomp -DFUZZ_ENTRY \
	    -Isrc -Itrain -Itools -Itests/fuzz -I$(BLAS_INCDIR) $(PKG_CFLAGS) -o build/fuzz/fuzz_$$h tests/fuzz/fuzz_$$h.c \
	    build/fuzz/tests/fuzz/fuzz_util.o build/fuzz/libelmo.a $(LDLIBS) || exit 1; \
	  mkdir -p tests/fuzz/$$h; \
	  echo "== fuzz $$h for $(FUZZ_SECONDS) s"; \
	  LSAN_OPTIONS=suppressions=$(abspath tests/fuzz/lsan.supp) ./build/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=tests/fuzz/$$h/crash- tests/fuzz/$$h 2>&1 | tail -3 || exit 1; \
	done

# the fault campaign: kills, signals, a busy directory, full disks (FAULTS_KILLS=20 ...)
faults: deps
	@$(MAKE) --no-print-directory $(ELMO)
	@sh tests/faults.sh $(ELMO)

# valgrind memcheck of short runs of every command, on a build valgrind can decode
memcheck: deps
	@$(MAKE) --no-print-directory NATIVE=0 BUILD=build/memcheck BIN=build/memcheck/bin build/memcheck/bin/elmo
	@sh scripts/memcheck.sh build/memcheck/bin/elmo

bench-corpus: deps
	@$(MAKE) --no-print-directory run-bench-corpus
run-bench-corpus: $(ELMO)
	@ELMO=$(abspath $(ELMO)) sh scripts/bench-corpus.sh

# The default folders (and .ci/run's build/sanitize inside them); other BUILD/BIN folders
# are left to whoever chose them.
clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:%=%.d) $(TEST_UTIL:.o=.d)

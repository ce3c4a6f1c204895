# elmo-c: the ELMo biLM in C.  `make` builds bin/elmo; `make test`, `make demo` and
# `make bench` first install any missing Debian package (scripts/install-deps.sh).
#
# Switches:  DEBUG=1 (-O0 -g)   SANITIZE=1 (address + undefined behaviour)
CC       ?= gcc
DEBUG    ?= 0
SANITIZE ?= 0
# Where the reference fixtures live (tests read them in place, never copy them).
ELMO_FIXTURES ?= $(abspath ../shared/fixtures)
export ELMO_FIXTURES

MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# The OpenMP build of OpenBLAS: the pthread build's threads fight our OpenMP regions
# (../shared/MACHINE.md).  Linked by path with an rpath, whatever update-alternatives says.
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
ifeq ($(SANITIZE),1)
  OPT += -fsanitize=address,undefined -fno-omit-frame-pointer
endif

CFLAGS  := -std=c11 -D_DEFAULT_SOURCE $(OPT) -fopenmp -Wall -Wextra -Wshadow \
           -Wno-unused-parameter -MMD -MP -Isrc -Itrain -Itools -I$(BLAS_INCDIR) $(PKG_CFLAGS)
LDFLAGS := $(OPT) -fopenmp
LDLIBS  := $(PKG_LIBS) -L$(BLAS_LIBDIR) -Wl,-rpath,$(BLAS_LIBDIR) -l:libopenblas.so.0 -lz -lm

# Three layers, each including only itself and the layers below it (scripts/check-layers.sh):
# src/ the biLM, train/ what training adds, tools/ the commands and corpus preparation.
# The subcommands (cmd_*.c, elmo.c) go into bin/elmo; everything else into libelmo.a,
# which the tests link.
CLI_SRC   := $(wildcard train/cmd_*.c tools/cmd_*.c) tools/elmo.c
LIB_SRC   := $(filter-out $(CLI_SRC),$(wildcard src/*.c train/*.c tools/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=build/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=build/%.o)
TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=build/tests/%)
TEST_UTIL := build/tests/testutil.o

.PHONY: all deps test run-tests demo run-demo bench run-bench bench-corpus run-bench-corpus clean
all: bin/elmo

deps:
	@sh scripts/install-deps.sh

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

build/libelmo.a: $(LIB_OBJ)
	ar rcs $@ $^

bin/elmo: $(CLI_OBJ) build/libelmo.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) build/libelmo.a $(LDLIBS)

build/tests/%: build/tests/%.o $(TEST_UTIL) build/libelmo.a
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_UTIL) build/libelmo.a $(LDLIBS) -lcmocka

# The packages must be present before pkg-config is asked, hence the second make.
test: deps
	@$(MAKE) --no-print-directory run-tests
run-tests: bin/elmo $(TEST_BIN)
	@sh scripts/check-layers.sh
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; ./$$t || fail=1; done; \
	 if [ $$fail -ne 0 ]; then echo "make test: FAILED"; exit 1; fi

demo: deps
	@$(MAKE) --no-print-directory run-demo
run-demo: bin/elmo
	@sh scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory run-bench
run-bench: bin/elmo
	@sh scripts/bench.sh

bench-corpus: deps
	@$(MAKE) --no-print-directory run-bench-corpus
run-bench-corpus: bin/elmo
	@sh scripts/bench-corpus.sh

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:%=%.d) $(TEST_UTIL:.o=.d)

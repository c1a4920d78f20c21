# nibble: `make` builds the library and programs, `make test` runs the cmocka suite, `make test SANITIZE=1`
# runs it under AddressSanitizer and UBSan, `make bench` measures against PyTorch on this machine.
# `make CUDA=1` adds the CUDA backend (nvcc, cuBLAS, cuDNN under CUDA_HOME); its tests run where a GPU is
# present and are reported as skipped elsewhere. `make deps` installs the Debian packages and ONNX Runtime that
# building, training and testing need (scripts/install-deps.sh, as root or with sudo); `make train` and
# `make check` run it first, in a make of its own, so that this Makefile is read again after the packages are
# there (whether Open MPI is installed decides MPI=1). Every other target only checks, and stops with the
# command that installs what is missing.

CC ?= gcc
SANITIZE ?= 0
CUDA ?= 0
PYTHON ?= /usr/bin/python3
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(CUDA_HOME)/bin/nvcc
# Ampere and Hopper machine code, plus PTX that newer GPUs compile at load time
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90

# FUZZ=1: the library under clang's libFuzzer instrumentation with AddressSanitizer and UBSan (make fuzz)
FUZZ ?= 0
ifeq ($(FUZZ),1)
CC := clang-14
BUILD := build/fuzz
OPT := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
       -Wno-pass-failed
LDSAN := -fsanitize=address,undefined
MPI := 0
else ifeq ($(SANITIZE),1)
BUILD := build/san
OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
else
BUILD := build/rel
OPT := -O3 -g
LDSAN :=
endif

# protoc-c's C code for formats/onnx.proto (ONNX's schema) is generated here, shared by every build
GEN := build/gen
GEN_SRCS := $(GEN)/formats/onnx.pb-c.c
GEN_HDRS := $(GEN)/formats/onnx.pb-c.h

CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -fopenmp $(OPT) -I. -I$(GEN) -I/usr/include/hdf5/serial -I/usr/include/libxml2 $(EXTRA_CFLAGS)
LDLIBS := -L/usr/lib/x86_64-linux-gnu/hdf5/serial -ldnnl -lopenblas -lhdf5 -lhdf5_hl -ljpeg -lpng -lprotobuf-c -lxml2 -lsodium -lz -lm
LDFLAGS := -fopenmp -pthread $(LDSAN)

# MPI (Open MPI from Debian) for data-parallel training: on by default where mpicc is installed; MPI=0 builds
# without it (bin/train then always trains alone)
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
CFLAGS += -DNB_MPI $(shell mpicc --showme:compile)
LDLIBS += $(shell mpicc --showme:link)
endif

LIB_SRCS := $(wildcard core/*.c formats/*.c backend/*.c backend/cpu/*.c optim/*.c layers/*.c models/*.c datasets/*.c setup/*.c task/*.c compress/*.c train/*.c detect/*.c \
              import/*.c deploy/*.c infer/*.c) $(GEN_SRCS)
CU_SRCS :=
ifeq ($(CUDA),1)
BUILD := $(BUILD)-cuda
CFLAGS += -DNB_CUDA -I$(CUDA_HOME)/include
LIB_SRCS += $(wildcard backend/cuda/*.c)
CU_SRCS := $(wildcard backend/cuda/*.cu)
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++
ifeq ($(MPI),1)
LDLIBS += -lnccl
else
LIB_SRCS := $(filter-out backend/cuda/cuda_nccl.c,$(LIB_SRCS))
endif
NVCCFLAGS := -O3 -std=c++17 -lineinfo -I. -I$(CUDA_HOME)/include $(CUDA_ARCH) -Xcompiler -Wall,-Wextra
endif
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(CU_SRCS:%.cu=$(BUILD)/%.cu.o)
LIB := $(BUILD)/libnibble.a

TEST_SUPPORT_SRCS := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJS := $(TEST_SUPPORT_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

CLI_SRCS := $(wildcard cli/*.c)
PROGS := $(CLI_SRCS:cli/%.c=$(BUILD)/bin/%)
CLI_BINS := $(CLI_SRCS:cli/%.c=bin/%)

DEPS_STAMP := build/.deps-build

.PHONY: all test check demo train bench clean deps fixtures build-tests paper paper-detect synth-voc fuzz fuzz-smoke
# objects and the release programs are kept (not deleted as intermediates); listed explicitly, a new source file
# is always compiled
.PRECIOUS: $(BUILD)/%.o $(BUILD)/bin/%
ifeq ($(SANITIZE),1)
all: $(LIB) $(PROGS)
else
all: $(LIB) $(PROGS) $(CLI_BINS)
endif

$(DEPS_STAMP):
	@mkdir -p build
	@scripts/install-deps.sh --check build || \
		{ echo "nibble: run 'make deps' first: it installs them (as root, or with sudo)" >&2; exit 1; }
	@touch $@

# the Debian packages of building, training (the Fashion-MNIST package) and testing (the ONNX checker, Node.js),
# and ONNX Runtime from npm
deps:
	@scripts/install-deps.sh --check build 2>/dev/null || scripts/install-deps.sh build
	@scripts/install-deps.sh --check data 2>/dev/null || scripts/install-deps.sh data
	@scripts/install-ort.sh
	@mkdir -p build && touch $(DEPS_STAMP)

$(GEN)/formats/onnx.pb-c.c: formats/onnx.proto | $(DEPS_STAMP)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) formats/onnx.proto
$(GEN)/formats/onnx.pb-c.h: $(GEN)/formats/onnx.pb-c.c

$(BUILD)/%.o: %.c | $(DEPS_STAMP) $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cu.o: %.cu | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/cli/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# bin/ holds the release programs the README uses (with the CUDA backend after `make CUDA=1`)
bin/%: $(BUILD)/bin/%
	@mkdir -p bin
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_SUPPORT_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

# the engine test counts the library's own allocations
$(BUILD)/tests/test_engine: LDFLAGS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# what the export tests check against: the onnx checker (Debian) and ONNX Runtime (npm, into build/ort)
ORT_STAMP := build/ort/node_modules/onnxruntime-node/package.json
$(ORT_STAMP):
	@scripts/install-ort.sh --check || \
		{ echo "nibble: ONNX Runtime is missing (build/ort): run 'make deps' first" >&2; exit 1; }

# libFuzzer targets (fuzz/fuzz_<name>.c), one per reader of files from elsewhere: `make fuzz T=name SECONDS=n`
# fuzzes one (new inputs under build/fuzz/corpus/<name>, crashes under build/fuzz/crashes/<name>);
# `make fuzz-smoke` builds every target, replays its committed seeds and regression inputs and fuzzes each for
# FUZZ_SMOKE_SECONDS (make check runs it). scripts/fuzz.sh holds the per-target options.
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRCS:fuzz/fuzz_%.c=%)
FUZZ_SUPPORT_OBJS := build/fuzz/fuzz/support/fuzz_files.o
SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 3
build/fuzz/fuzz/fuzz_%: build/fuzz/fuzz/fuzz_%.o $(FUZZ_SUPPORT_OBJS) build/fuzz/libnibble.a
	@mkdir -p $(dir $@)
	clang-14 -fsanitize=fuzzer,address,undefined -fopenmp -pthread $^ $(LDLIBS) -o $@
fuzz:
	@test -n "$(T)" || { echo "usage: make fuzz T=name [SECONDS=n]; targets: $(FUZZ_NAMES)" >&2; exit 2; }
	$(MAKE) FUZZ=1 build/fuzz/fuzz/fuzz_$(T)
	scripts/fuzz.sh $(T) $(SECONDS)
fuzz-smoke:
	$(MAKE) FUZZ=1 $(FUZZ_NAMES:%=build/fuzz/fuzz/fuzz_%)
	@scripts/fuzz.sh --smoke $(FUZZ_SMOKE_SECONDS) $(FUZZ_NAMES)

# OMP_NUM_THREADS=2 pins the thread count the determinism tests assume is fixed; each binary runs alone.
test: $(TEST_BINS) $(PROGS) $(ORT_STAMP)
	@NB_BIN_DIR=$(BUILD)/bin NB_CUDA_BUILD=$(CUDA) NB_ORT_NODE_PATH=$(CURDIR)/build/ort/node_modules \
		scripts/run-tests.sh $(TEST_BINS)

# every test and benchmark binary, built but not run (for running them on another machine)
build-tests: $(TEST_BINS) $(BENCH_BINS) $(PROGS)

# what CI runs: the folders' layering (scripts/layers.py), the suite, then again under AddressSanitizer and
# UBSan, a few seconds of every fuzz target, then the CUDA build wherever nvcc is installed (its GPU tests are reported as skipped on a machine
# without a GPU)
check:
	$(MAKE) deps
	@$(PYTHON) scripts/layers.py
	$(MAKE) test
	$(MAKE) test SANITIZE=1
	$(MAKE) fuzz-smoke
	@if [ -x $(NVCC) ] && [ -f $(CUDA_HOME)/include/cudnn.h ]; then $(MAKE) test CUDA=1; \
	else echo "nibble: no nvcc and cuDNN under $(CUDA_HOME): the CUDA build was not compiled"; fi

# the README's main job: install what is missing, build, train the default Fashion-MNIST experiment
EXPERIMENT ?= experiments/fmnist_resnet20.cfg
train:
	$(MAKE) deps
	$(MAKE) all
	bin/train $(EXPERIMENT) $(ARGS)

demo: bin/demo
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)} bin/demo

# on a CUDA build with a GPU present, also GPU training throughput against PyTorch (PYTHON_GPU: an
# interpreter whose torch has CUDA; Debian's has not)
PYTHON_GPU ?= python3
bench: $(BENCH_BINS) $(PROGS) $(ORT_STAMP)
	@scripts/install-deps.sh --check bench 2>/dev/null || scripts/install-deps.sh bench
	@BUILD=$(BUILD) PYTHON=$(PYTHON) PYTHON_GPU=$(PYTHON_GPU) scripts/bench.sh

# the Fashion-MNIST compression grid and paper/fmnist_tables.md with its plots (about ten hours)
paper: all
	@scripts/install-deps.sh --check data 2>/dev/null || scripts/install-deps.sh data
	@scripts/install-deps.sh --check bench 2>/dev/null || scripts/install-deps.sh bench
	scripts/paper_fmnist.sh

# the synthetic VOC-format detection data (data/synth_voc) and the detection table
synth-voc:
	/usr/bin/python3 scripts/make_synth_voc.py data/synth_voc --train 3000 --test 600

paper-detect: all
	scripts/paper_detect.sh

fixtures:
	@scripts/install-deps.sh --check bench 2>/dev/null || scripts/install-deps.sh bench
	@scripts/install-deps.sh --check export 2>/dev/null || scripts/install-deps.sh export
	$(PYTHON) scripts/gen_fixtures.py tests/fixtures
	$(PYTHON) scripts/gen_model_fixtures.py tests/fixtures/models.h5
	$(PYTHON) scripts/gen_detect_fixtures.py tests/fixtures/multibox.h5
	$(PYTHON) scripts/gen_import_fixtures.py tests/fixtures

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)

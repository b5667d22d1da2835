# epgate build. Out-of-tree: everything goes under $(BUILD). V=1 shows commands.
BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

CC       ?= cc
CLANG    ?= clang
BPFTOOL  ?= bpftool
ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude -Iuser/lib -I$(BUILD)
LDLIBS   := $(shell pkg-config --libs libxdp libbpf jansson libmicrohttpd 2>/dev/null || echo -lxdp -lbpf -ljansson -lmicrohttpd) -lelf -lz
BPF_CFLAGS := -target bpf -O2 -g $(WARN) -D__TARGET_ARCH_$(ARCH) -Iinclude \
	    -I/usr/include/$(MULTIARCH)

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.PHONY: all clean install test test-unit test-integ demo deps bench

BPF_SRC  := bpf/epgate.bpf.c
BPF_HDR  := $(wildcard bpf/*.h) $(wildcard include/epgate/*.h include/epgate/*.def)
LIB_SRC  := $(wildcard user/lib/*.c)
LIB_OBJ  := $(patsubst user/lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRC))
LIB_HDR  := $(wildcard user/lib/*.h) $(wildcard include/epgate/*.h include/epgate/*.def)
SKEL     := $(BUILD)/epgate.skel.h
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

all: $(BUILD)/epgate $(UNIT_BIN)

$(BUILD)/bpf/epgate.bpf.o: $(BPF_SRC) $(BPF_HDR)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(SKEL): $(BUILD)/bpf/epgate.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name epgate_bpf > $@ 2> $@.log || { cat $@.log; exit 1; }

# The version, rewritten only when it changes, so objects that print it are
# rebuilt after a commit and nothing else is.
$(BUILD)/version.h: FORCE
	$(Q)mkdir -p $(@D)
	$(Q)printf '#define EPG_VERSION "%s"\n' '$(VERSION)' > $@.tmp
	$(Q)cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:
.PHONY: FORCE

$(BUILD)/lib/serve.o $(BUILD)/asan/lib/serve.o: $(BUILD)/version.h

$(BUILD)/lib/%.o: user/lib/%.c $(LIB_HDR) $(SKEL)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libepgate.a: $(LIB_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/epgate: user/epgate.c $(BUILD)/libepgate.a $(BUILD)/version.h
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $< $(BUILD)/libepgate.a $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/check.h $(BUILD)/libepgate.a
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itests/unit $< $(BUILD)/libepgate.a $(LDLIBS) -o $@

# The README's test command: installs what is missing, builds, runs every test.
test:
	$(Q)./scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all asan $(BUILD)/fuzz/fuzz_config
	$(Q)BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS_CI) ./tests/run.sh

# The README's demo command.
demo:
	$(Q)./scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) ./scripts/demo.sh

install: $(BUILD)/epgate
	install -D -m 0755 $(BUILD)/epgate $(DESTDIR)$(PREFIX)/sbin/epgate

clean:
	rm -rf $(BUILD)

# Sanitizers: the userspace library and its unit tests built with ASan and
# UBSan into $(BUILD)/asan, run by `make test` once.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_LIB_OBJ := $(patsubst user/lib/%.c,$(BUILD)/asan/lib/%.o,$(LIB_SRC))
ASAN_UNIT := $(patsubst tests/unit/%.c,$(BUILD)/asan/tests/%,$(UNIT_SRC))

$(BUILD)/asan/lib/%.o: user/lib/%.c $(LIB_HDR) $(SKEL)
	$(call msg,CC-ASAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(ASAN_FLAGS) -c $< -o $@

$(BUILD)/asan/tests/%: tests/unit/%.c tests/unit/check.h $(ASAN_LIB_OBJ)
	$(call msg,TEST-ASAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(ASAN_FLAGS) -Itests/unit $< $(ASAN_LIB_OBJ) $(LDLIBS) -o $@

asan: $(ASAN_UNIT)
.SECONDARY: $(ASAN_LIB_OBJ) $(LIB_OBJ)

# libFuzzer on the config loader and compiler, bounded: FUZZ_SECONDS
# (`make fuzz`), FUZZ_SECONDS_CI within `make test`.
FUZZ_SECONDS ?= 60
FUZZ_SECONDS_CI ?= 30
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -Iinclude -Iuser/lib -I$(BUILD)
$(BUILD)/fuzz/fuzz_config: tests/fuzz/fuzz_config.c user/lib/config.c user/lib/compile.c user/lib/error.c $(LIB_HDR)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) tests/fuzz/fuzz_config.c user/lib/config.c user/lib/compile.c user/lib/error.c \
		$(shell pkg-config --libs jansson) -o $@

fuzz: $(BUILD)/fuzz/fuzz_config
	$(Q)mkdir -p $(BUILD)/fuzz/corpus
	$(Q)$(BUILD)/fuzz/fuzz_config -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-dict=tests/fuzz/corpus/config.dict -print_final_stats=1 \
		$(BUILD)/fuzz/corpus tests/fuzz/corpus/config 2>&1 | tail -n 12
.PHONY: asan fuzz

# make bench: root, not part of make test; BENCH_QUICK=1 for a short run.
$(BUILD)/bench/bench_micro: tests/bench/bench_micro.c tests/unit/pkt.h $(BUILD)/libepgate.a \
		$(BUILD)/bench/prims.bpf.o
	$(call msg,BENCH,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itests/unit $< $(BUILD)/libepgate.a $(LDLIBS) -o $@

# the kernel primitives alone, for bench_micro's reference table
$(BUILD)/bench/prims.bpf.o: tests/bench/prims.bpf.c include/epgate/abi.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

bench: all $(BUILD)/bench/bench_micro
	$(Q)BUILD=$(BUILD) ./tests/bench/run.sh

# The manual page epgate(8): the CLI's own --help output (every command's)
# and the prose of man/epgate.8.in, rendered by scripts/mkman.sh.
$(BUILD)/man/epgate.8: $(BUILD)/epgate man/epgate.8.in scripts/mkman.sh
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)scripts/mkman.sh $(BUILD)/epgate man/epgate.8.in > $@.tmp && mv $@.tmp $@

man: $(BUILD)/man/epgate.8

# The Debian package $(BUILD)/deb/epgate_<version>_<arch>.deb, by debhelper
# (debian/rules, built out of tree in $(BUILD)/deb/obj); the version comes
# from git describe (scripts/deb-version.sh). debian/ is left as it was.
DEB_CLEAN := debian/epgate debian/.debhelper debian/files debian/*.substvars \
	debian/*.debhelper debian/*.debhelper.log debian/debhelper-build-stamp
deb:
	$(Q)dpkg-checkbuilddeps
	$(Q)mkdir -p $(BUILD)/deb && rm -f $(BUILD)/deb/epgate_*.deb
	$(call msg,DEB,$(BUILD)/deb/epgate_$(shell scripts/deb-version.sh)_$(shell dpkg --print-architecture).deb)
	$(Q)rm -rf $(DEB_CLEAN)
	$(Q)DEB_DIR=$(BUILD)/deb debian/rules binary $(if $(V),,>$(BUILD)/deb/build.log 2>&1 || { cat $(BUILD)/deb/build.log; rm -rf $(DEB_CLEAN); exit 1; }); \
		rc=$$?; rm -rf $(DEB_CLEAN); exit $$rc
	$(Q)ls $(BUILD)/deb/epgate_*.deb >/dev/null
.PHONY: man deb

# The verifier's cost per program (instructions processed, states), to watch
# the budget (1,000,000) as features grow. Root.
$(BUILD)/bench/verifier_stats: tests/bench/verifier_stats.c $(SKEL)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $< $(LDLIBS) -o $@

verifier-stats: $(BUILD)/bench/verifier_stats
	$(Q)$(BUILD)/bench/verifier_stats
.PHONY: verifier-stats

# the differential test includes the reference model's source
$(BUILD)/tests/test_differential $(BUILD)/asan/tests/test_differential: tests/model/refmodel.c tests/model/refmodel.h

# The differential test for as long as asked: make differential PACKETS=10000000 [SEED=n]
PACKETS ?= 1000000
differential: $(BUILD)/tests/test_differential
	$(Q)EPG_DIFF_PACKETS=$(PACKETS) $(if $(SEED),EPG_DIFF_SEED=$(SEED)) $(BUILD)/tests/test_differential
.PHONY: differential

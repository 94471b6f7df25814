# kmagent: kernel-accelerated HA proxy for memcached.  See README.md.
#
#   make            build everything into build/
#   make test       install dependencies, build, run every test
#   make demo       the article's scenario in a namespace lab, narrated
#   make bench      benchmarks against memcached direct and nutcracker
#   make fuzz       the differential protocol fuzzer, FUZZ_SECS (600) long
#   make chaos      the randomized sequence tester: SEED, DURATION (s),
#                   CHAOS_ARGS (tests/tools/mcchaos.py -h)
#   make SAN=1 ...  the same with ASan/UBSan, into build-san/
#   make TSAN=1 ... the same with ThreadSanitizer, into build-tsan/
#   make test-tsan  a smoke subset of the integration tests against
#                   build-tsan/kmagentd, failing on any TSan report
#   make check-includes  no include cycle in user/, layers kept
#   make compile_commands.json  for clangd (docs/HACKING.md)
#   make install    kmagentd, kmagentctl, man pages, unit, sample config
#                   (PREFIX=/usr/local, DESTDIR= for staging)

CC      ?= gcc
CLANG   ?= clang
BPFTOOL ?= bpftool
BUILD   ?= build

CFLAGS ?= -O2 -g
# user/: lib/ (no daemon state) below daemon/ (main, shared state),
# proxy/ (data path), control/ (control plane), loader/ (kernel path);
# cli/ links lib/ only.  Headers are included by name from every one.
USER_DIRS := lib daemon proxy control loader cli
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE \
		   -Iinclude $(USER_DIRS:%=-Iuser/%) -I$(BUILD)
ifeq ($(SAN),1)
BUILD := build-san
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
		   -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
BUILD := build-tsan
# -O1 keeps TSan's stacks readable; gcc's truncation warning misfires at
# -O1 on bounded snprintf copies (ctl.c) that -O2 proves fine.  TSan does
# not model __atomic_thread_fence (kbpf_daemon.c): warned, not an error
override CFLAGS += -O1 -fsanitize=thread -fno-omit-frame-pointer \
		   -Wno-format-truncation -Wno-error=tsan
override LDFLAGS += -fsanitize=thread
endif
LDLIBS := -lbpf -lelf -lz -lpthread -lm

# clang -target bpf has no multiarch path for <asm/types.h>
BPF_CFLAGS := -O2 -g -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 \
	      -Iinclude -Ibpf -I/usr/include/$(shell $(CC) -dumpmachine)

MAIN_SRCS  := user/daemon/kmagentd.c user/cli/kmagentctl.c
LIB_SRCS   := $(wildcard user/lib/*.c)
LIB_OBJS   := $(LIB_SRCS:user/%.c=$(BUILD)/user/%.o)
KMD_SRCS   := $(filter-out $(MAIN_SRCS),$(wildcard \
		$(patsubst %,user/%/*.c,daemon proxy control loader)))
KMD_OBJS   := $(KMD_SRCS:user/%.c=$(BUILD)/user/%.o)
PROGS      := $(BUILD)/kmagentd $(BUILD)/kmagentctl
BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/%.bpf.o)
SKELS      := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/%.skel.h)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
BPF_TESTS  := $(patsubst tests/bpf/%.c,$(BUILD)/tests/bpf_%,$(wildcard tests/bpf/test_*.c))
TOOLS      := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(wildcard tests/tools/*.c)) \
	      $(patsubst bench/%.c,$(BUILD)/tools/%,$(wildcard bench/*.c))
HEADERS    := $(wildcard include/*.h user/*/*.h bpf/*.h bench/*.h)

.PHONY: all progs deps test test-tsan unit demo bench fuzz chaos format check-format \
	check-includes compile_commands.json clean install
all: $(BPF_OBJS) $(PROGS) $(UNIT_TESTS) $(BPF_TESTS) $(TOOLS)

# what `make install` and the Debian package need, nothing more
progs: $(PROGS)

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
# /etc for a system install (PREFIX /usr), else beside the rest; the
# unit reads the config where this puts it (@SYSCONFDIR@)
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)

# An existing kmagent.conf is kept: it is the operator's.
install: $(PROGS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)
	install -m 755 $(PROGS) $(DESTDIR)$(SBINDIR)/
	install -m 644 docs/man/kmagentd.8 docs/man/kmagentctl.8 \
		$(DESTDIR)$(MANDIR)/man8/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		packaging/kmagentd.service.in \
		>$(DESTDIR)$(UNITDIR)/kmagentd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/kmagentd.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/kmagent.conf ] || \
		install -m 644 packaging/kmagent.conf $(DESTDIR)$(SYSCONFDIR)/

deps:
	@scripts/install-deps.sh

test: deps
	$(MAKE) check-format check-includes
	$(MAKE) all
	$(MAKE) SAN=1 unit build-san/kmagentd
	tests/run.sh

# tests/integration/24_fuzz_tcp.sh for longer (FUZZ_SEED=N replays a run)
FUZZ_SECS ?= 600
fuzz: deps
	$(MAKE) all
	$(MAKE) SAN=1 build-san/kmagentd
	FUZZ_SECS=$(FUZZ_SECS) bash tests/integration/24_fuzz_tcp.sh

# docs/operations.md, "What the chaos test checks": DURATION seconds as runs
# of at most 120 s with seeds SEED, SEED+1...; SEED=N DURATION=D replays one
SEED ?= 1
DURATION ?= 60
CHAOS_ARGS ?=
chaos: deps
	$(MAKE) all
	scripts/chaos.sh $(SEED) $(DURATION) $(CHAOS_ARGS)

# docs/HACKING.md: kmagentd under ThreadSanitizer, a few integration tests
# (which use build/'s kmagentctl and tools)
test-tsan:
	$(MAKE) all
	$(MAKE) TSAN=1 build-tsan/kmagentd
	scripts/tsan-smoke.sh

# unit tests only: what `make SAN=1 unit` builds for the sanitizer run
unit: $(UNIT_TESTS)

demo: deps
	$(MAKE) all
	scripts/demo.sh

bench: deps
	$(MAKE) all
	scripts/bench.sh

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(HEADERS) | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

$(BUILD)/user/%.o: user/%.c $(HEADERS) | $(SKELS) $(BUILD)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# the skeleton embeds the BPF object: a changed program rebuilds its loader
$(BUILD)/user/loader/kbpf.o: $(SKELS)

# libkm.a: user/lib; libkmd.a: the rest of kmagentd (it needs libkm.a after)
$(BUILD)/libkm.a: $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/libkmd.a: $(KMD_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

KMD_LIBS := $(BUILD)/libkmd.a $(BUILD)/libkm.a

$(BUILD)/kmagentd: $(BUILD)/user/daemon/kmagentd.o $(KMD_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the CLI: the library only, no BPF object (detach.c needs no skeleton)
$(BUILD)/kmagentctl: $(BUILD)/user/cli/kmagentctl.o $(BUILD)/libkm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(KMD_LIBS) $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(KMD_LIBS) $(LDLIBS) -lcmocka

# the skeleton is in the binary: a changed BPF program rebuilds the tests
$(BUILD)/tests/bpf_%: tests/bpf/%.c $(KMD_LIBS) $(HEADERS) $(SKELS) \
		     $(wildcard tests/bpf/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(KMD_LIBS) $(LDLIBS) -lcmocka

$(BUILD)/tools/%: tests/tools/%.c $(KMD_LIBS) $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(KMD_LIBS) $(LDLIBS)

$(BUILD)/tools/%: bench/%.c $(KMD_LIBS) $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(KMD_LIBS) $(LDLIBS)

$(BUILD):
	@mkdir -p $@/user $@/tests $@/tools

FORMAT_SRCS = $(wildcard include/*.h user/*/*.[ch] bpf/*.[ch] tests/*/*.c bench/*.c)
format:
	clang-format -i $(FORMAT_SRCS)

check-format:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

# no include cycle between user/ modules, lib/ and cli/ below the rest,
# each header declaring its own module's functions only
check-includes:
	scripts/check-includes.py

# for clangd and the like: every C file with the flags it is built with
compile_commands.json:
	scripts/compile-commands.py "$(CC)" "$(CFLAGS)" $(LIB_SRCS) \
		$(KMD_SRCS) $(MAIN_SRCS) $(wildcard tests/*/*.c bench/*.c) \
		-- "$(CLANG)" "$(BPF_CFLAGS)" $(BPF_SRCS) >$@.tmp && mv $@.tmp $@

clean:
	rm -rf build build-san build-tsan compile_commands.json

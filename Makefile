# dirbridge build. `make` builds every program into build/; `make check` installs
# what is missing, builds with warnings as errors, builds again with ASan+UBSan and
# runs the whole suite under it against real servers on loopback.  `make fuzz`
# builds the libFuzzer harnesses into build-fuzz/ with clang and runs each one.
.DEFAULT_GOAL := all
.SUFFIXES:

BUILD ?= build
SAN   ?=
FUZZ  ?=
FUZZ_S ?= 60
VERSION := 0.1.0

# Every dependency through pkg-config; Debian ships these three without a .pc file.
PKGS      := ldap lber gnutls libtasn1 libuv jansson libsasl2 libzip libsystemd
NOPC_LIBS := -liniparser -lhttp_parser -lwslay
NOPC_INC  := -I/usr/include/iniparser

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wcast-qual -Wformat=2 -Wvla
CFLAGS   ?= -O2 -g
# pkg-config runs at most once per make, and only when a rule first needs its
# answer: `make demo` installs the libraries (deps) before anything is compiled,
# so an answer taken while the Makefile is parsed would be empty on a fresh machine.
once = $(eval $(1) := $$(shell $(2)))$($(1))
PKG_CFLAGS = $(call once,PKG_CFLAGS,pkg-config --cflags $(PKGS))
PKG_LIBS   = $(call once,PKG_LIBS,pkg-config --libs $(PKGS))
CMOCKA_LIBS = $(call once,CMOCKA_LIBS,pkg-config --libs cmocka)
CPPFLAGS += -D_GNU_SOURCE -DDIRBRIDGE_VERSION='"$(VERSION)"' -I. $(NOPC_INC) $(PKG_CFLAGS)
ALL_CFLAGS = -std=c11 $(WARN) -fstack-protector-strong -fPIE $(CFLAGS)
LDFLAGS  += -pie -Wl,-z,relro,-z,now
LDLIBS    = $(PKG_LIBS) $(NOPC_LIBS)
ifeq ($(SAN),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS    += -fsanitize=address,undefined
else ifeq ($(FUZZ),1)
# Every object gets libFuzzer's coverage hooks and the sanitizers; only the
# harness link pulls in libFuzzer's main.
ALL_CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer
LDFLAGS    += -fsanitize=fuzzer,address,undefined
else
CPPFLAGS   += -D_FORTIFY_SOURCE=2
endif

# Modules: every .c under config/, ldap/ and tls/ goes into one archive, so link
# order between modules never matters.
# Files ending in _win.c are the Windows side of agent/platform.h and are never
# built here: `make windows-check` compiles them with mingw-w64.
MOD_SRC := $(filter-out %_win.c,$(wildcard log/*.c config/*.c net/*.c ldap/*.c tls/*.c))
MOD_OBJ := $(MOD_SRC:%.c=$(BUILD)/obj/%.o)
LIB     := $(BUILD)/libdirbridge.a

# The daemon's code minus main() is an archive too, so unit tests link the
# agent's files instead of including them.
AGENT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out agent/main.c %_win.c,$(wildcard agent/*.c)))
AGENT_LIB := $(BUILD)/libagent.a

# Programs: agent/ is the daemon, tools/NAME/ is build/dirbridge-NAME.
TOOL_DIRS := $(patsubst tools/%/,%,$(sort $(dir $(filter-out %_win.c,$(wildcard tools/*/*.c)))))
PROGS     := $(BUILD)/dirbridge $(TOOL_DIRS:%=$(BUILD)/dirbridge-%)

# Tests: tests/unit/test_X.c (cmocka) and tests/tools/X.c, one program each.
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TTOOL_SRC := $(wildcard tests/tools/*.c)
TTOOL_BIN := $(TTOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)

# Fuzz harnesses: tests/fuzz/fuzz_X.c (defines LLVMFuzzerTestOneInput) is
# build-fuzz/fuzz/fuzz_X, seeded from tests/fuzz/corpus/X/.  Each links the
# module archive, libagent.a and an archive of tools/ objects (without their
# main.c), so a harness pulls in exactly the files it calls.
FUZZ_BUILD := build-fuzz
FUZZ_CC    ?= clang
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_TOOLS := $(BUILD)/libfuzz-tools.a
FUZZ_TOOLS_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out %/main.c %_win.c,$(wildcard tools/*/*.c)))

# Objects of tools and tests are kept between builds, not removed as intermediates.
.SECONDARY:
.PHONY: all deps check demo bench clean asan fuzz fuzz-build fuzz-bins deb windows-check
all: $(PROGS) $(UNIT_BIN) $(TTOOL_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(MOD_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

$(AGENT_LIB): $(AGENT_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/dirbridge: $(BUILD)/obj/agent/main.o $(AGENT_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Each tool links its own objects, the module archive and, where it needs to
# reuse agent code, nothing else: tools never include agent/.
.SECONDEXPANSION:
tool_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out %_win.c,$(wildcard tools/$(1)/*.c)))
$(BUILD)/dirbridge-%: $$(call tool_objs,$$*) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(AGENT_LIB) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FUZZ_TOOLS): $(FUZZ_TOOLS_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/fuzz/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(AGENT_LIB) $(FUZZ_TOOLS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

fuzz-bins: $(FUZZ_BIN)

deps:
	@packaging/deps.sh

# Every Windows-only file (*_win.c) compiled against the real Windows headers
# with Debian's mingw-w64 (package gcc-mingw-w64-x86-64), so the Windows code
# cannot rot while CI only runs Linux.  They include only plain C headers of
# ours: no libuv, GnuTLS or libldap, which mingw here does not have.
WIN_CC  ?= x86_64-w64-mingw32-gcc
WIN_SRC := $(wildcard */*_win.c tools/*/*_win.c)
windows-check:
	@test -n "$(WIN_SRC)" || { echo "windows-check: no *_win.c files"; exit 1; }
	@command -v $(WIN_CC) >/dev/null || { echo "windows-check: $(WIN_CC) missing; run make deps"; exit 1; }
	$(WIN_CC) -std=c11 $(WARN) -DUNICODE -D_UNICODE -D_WIN32_WINNT=0x0601 -DDIRBRIDGE_VERSION='"$(VERSION)"' \
	  -I. -fsyntax-only $(WIN_SRC)

asan:
	$(MAKE) BUILD=build-asan SAN=1 all

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) FUZZ=1 CC=$(FUZZ_CC) fuzz-bins

# FUZZ_S seconds per harness on a scratch copy of its corpus; a crash input is
# kept in build-fuzz/crashes/.
fuzz: deps fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_S)

# The suite runs against the sanitizer build; build/ is still built first so a
# warning anywhere fails the check.  The fuzz harnesses are built too, and the
# suite runs each for a few seconds (tests/integration/fuzz.sh).
check: deps
	$(MAKE) all
	$(MAKE) asan
	$(MAKE) fuzz-build
	$(MAKE) windows-check
	tests/run.sh build-asan

demo: deps all
	tests/demo.sh $(BUILD)

bench: deps all
	tests/bench.sh $(BUILD)

# build/dirbridge_VERSION_ARCH.deb from the programs of this build; see
# docs/packaging.md.  DEB_VERSION is VERSION plus the Debian revision.
DEB_VERSION ?= $(VERSION)-1
deb: $(PROGS)
	packaging/deb.sh $(BUILD) $(DEB_VERSION) $(PROGS)

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

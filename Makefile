# bollard - one GNU Makefile, out-of-tree build in build/.
#   make            release build: build/bollard, build/bollard-demo-app
#   make test       unit tests (ASan/UBSan), fuzz-corpus replay, integration tests
#   make demo       three demo apps + bollard with examples/demo.conf
#   make bench      side-by-side benchmark against HAProxy and NGINX
#   make fuzz       short libFuzzer runs (clang)
#   V=1             show commands

PYTHON   ?= /usr/bin/python3
CC       ?= cc
BUILD    := build
SANDIR   := $(BUILD)/san
DEPS_OK  := $(BUILD)/.deps-build

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASEFLAGS:= -std=gnu11 -g -pthread -D_GNU_SOURCE $(WARN) -Isrc
CFLAGS   ?= -O2
LIBS     := -lsodium -lxxhash -lssl -lcrypto -pthread
SANFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

ifeq ($(V),1)
Q :=
else
Q := @
endif

SRC      := $(wildcard src/*.c)
LIBSRC   := $(filter-out src/main.c,$(SRC))
OBJ      := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRC))
SANOBJ   := $(patsubst src/%.c,$(SANDIR)/obj/%.o,$(SRC))
DEMOSRC  := $(wildcard demo/*.c)
UNITSRC  := $(wildcard tests/unit/test_*.c)
UNITBIN  := $(patsubst tests/unit/%.c,$(SANDIR)/%,$(UNITSRC))

# Which src modules each unit test links with (default: the module of its name).
UNIT_DEPS_h1     := h1
UNIT_DEPS_cfg    := cfg cfg_kw persist cookie seal stick log h1 cidr
UNIT_DEPS_lb     := lb lb_rr lb_leastconn
UNIT_DEPS_lb_hash := lb_hash
UNIT_DEPS_buf    := buf
UNIT_DEPS_json   := json
UNIT_DEPS_seal   := seal
UNIT_DEPS_admin  := admin admin_sessions admin_server admin_pool server lb_hash lb lb_rr lb_leastconn json stats dashboard persist stick cookie seal log h1 ev cfg cfg_kw cidr
UNIT_DEPS_stick  := stick
UNIT_DEPS_cookie := cookie
UNIT_DEPS_proxyproto := proxyproto
UNIT_DEPS_cidr := cidr
UNIT_DEPS_state  := state persist stick cookie seal log h1 cfg cfg_kw cidr
UNIT_DEPS_tls_ctx := tls_ctx

.PHONY: all deps test unit fuzz-replay integ demo bench fuzz clean install microbench

all: $(DEPS_OK) $(BUILD)/bollard $(BUILD)/bollard-demo-app

$(DEPS_OK): scripts/install-deps.sh
	$(Q)mkdir -p $(BUILD)
	$(Q)scripts/install-deps.sh build
	$(Q)touch $@

$(BUILD)/obj/%.o: src/%.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  CC      $@"
	$(Q)$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(SANDIR)/obj/%.o: src/%.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  CC san  $@"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bollard: $(OBJ)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(BASEFLAGS) $(CFLAGS) -o $@ $^ $(LIBS)

$(SANDIR)/bollard: $(SANOBJ)
	@[ "$(V)" = 1 ] || echo "  LD san  $@"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bollard-demo-app: $(DEMOSRC) $(wildcard demo/*.h) | $(DEPS_OK)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(BASEFLAGS) $(CFLAGS) -Idemo -o $@ $(DEMOSRC) -pthread

# ---- tests ---------------------------------------------------------------
$(BUILD)/.deps-test: scripts/install-deps.sh
	$(Q)mkdir -p $(BUILD)
	$(Q)scripts/install-deps.sh build test
	$(Q)touch $@ $(DEPS_OK)

# A function, not an inline patsubst: make replaces the first '%' of each
# prerequisite word of a pattern rule with the stem before expanding it.
unit_objs = $(patsubst %,$(SANDIR)/obj/%.o,$(1))

.SECONDEXPANSION:
$(SANDIR)/test_%: tests/unit/test_%.c $$(call unit_objs,$$(or $$(UNIT_DEPS_$$*),$$*)) | $(BUILD)/.deps-test
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LD san  $@"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $^ -lcmocka $(LIBS)

FUZZSRC  := $(wildcard fuzz/fuzz_*.c)
FUZZREPLAY := $(patsubst fuzz/fuzz_%.c,$(SANDIR)/replay_%,$(FUZZSRC))
UNIT_DEPS_fuzz_h1 := h1
UNIT_DEPS_fuzz_cookie := cookie
UNIT_DEPS_fuzz_proxyproto := proxyproto

$(SANDIR)/replay_%: fuzz/fuzz_%.c fuzz/replay.c $$(call unit_objs,$$(or $$(UNIT_DEPS_fuzz_$$*),$$*)) | $(BUILD)/.deps-test
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LD san  $@"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $^ $(LIBS)

# LD_PRELOAD shim counting heap allocations (tests/integ/test_no_alloc.py)
$(BUILD)/alloccount.so: tests/alloc/alloccount.c | $(DEPS_OK)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $<

test: $(BUILD)/.deps-test all $(SANDIR)/bollard $(BUILD)/alloccount.so $(UNITBIN) $(FUZZREPLAY)
	$(Q)PYTHON=$(PYTHON) scripts/run-tests.sh

unit: $(UNITBIN)
	$(Q)for t in $(UNITBIN); do $$t || exit 1; done

integ: all $(SANDIR)/bollard
	$(Q)cd tests/integ && $(PYTHON) -m pytest -q $(PYTEST_ARGS)

# ---- fuzzing with libFuzzer (developers) -----------------------------------
FUZZ_SECONDS ?= 60
fuzz: $(BUILD)/.deps-test
	$(Q)scripts/install-deps.sh fuzz
	$(Q)scripts/fuzz.sh $(FUZZ_SECONDS)

# ---- demo / bench ----------------------------------------------------------
demo: all
	$(Q)scripts/demo.sh

bench: all
	$(Q)scripts/install-deps.sh bench
	$(Q)$(PYTHON) bench/bench.py $(BENCH_ARGS)

# Microbenchmarks of single modules (tests/unit/bench_<module>.c), release
# flags, linked like the unit test of the same module; not run by make test.
BENCHBIN := $(patsubst tests/unit/%.c,$(BUILD)/%,$(wildcard tests/unit/bench_*.c))
rel_objs = $(patsubst %,$(BUILD)/obj/%.o,$(1))
# BENCH_DEPS_<module> overrides the unit test's list where a bench needs other modules.
BENCH_DEPS_seal := cookie
$(BUILD)/bench_%: tests/unit/bench_%.c $$(call rel_objs,$$(or $$(BENCH_DEPS_$$*),$$(UNIT_DEPS_$$*),$$*)) | $(DEPS_OK)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(BASEFLAGS) $(CFLAGS) -o $@ $^ $(LIBS)

microbench: $(BENCHBIN)
	$(Q)for b in $(BENCHBIN); do echo "== $$b"; $$b || exit 1; done

# make install [PREFIX=/usr/local] [DESTDIR=staging] [SYSTEMDUNITDIR=dir]
# Binaries to bin/, bollard(8) and bollard.conf(5) to share/man, example
# configurations and contrib/ (Grafana, Prometheus) to share/doc/bollard.
# The systemd unit goes to $(PREFIX)/lib/systemd/system (a directory
# systemd searches for /usr and /usr/local alike) with ExecStart pointing
# at $(PREFIX)/bin; SYSTEMDUNITDIR= (empty) leaves it out.
PREFIX ?= /usr/local
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR   := $(PREFIX)/share/doc/bollard
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(DOCDIR)/contrib
	install -m 0755 $(BUILD)/bollard $(BUILD)/bollard-demo-app $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 doc/bollard.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 doc/bollard.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 examples/*.conf $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 contrib/grafana-dashboard.json contrib/prometheus.yml \
		$(DESTDIR)$(DOCDIR)/contrib/
ifneq ($(SYSTEMDUNITDIR),)
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' contrib/bollard.service > $(DESTDIR)$(SYSTEMDUNITDIR)/bollard.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/bollard.service
endif

clean:
	rm -rf $(BUILD)

-include $(OBJ:.o=.d) $(SANOBJ:.o=.d)

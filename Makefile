# bollard - one GNU Makefile, out-of-tree build in build/.
#   make            release build: build/bollard, build/bollard-demo-app
#   make test       unit tests (ASan/UBSan), fuzz-corpus replay, integration tests
#   make demo       three demo apps + bollard with examples/demo.conf
#   make demo-two   two bollard instances sharing their tables on a Redis of their own
#   make bench      side-by-side benchmark against HAProxy and NGINX
#   make lab        the alternatives lab: stickiness vs shared stores, JWT, replication
#   make fuzz       short libFuzzer runs (clang)
#   V=1             show commands

PYTHON   ?= /usr/bin/python3
CC       ?= cc
BUILD    := build
SANDIR   := $(BUILD)/san
DEPS_OK  := $(BUILD)/.deps-build

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
	    -Wformat=2 -Wmissing-format-attribute
BASEFLAGS:= -std=gnu11 -g -pthread -D_GNU_SOURCE $(WARN) -Isrc
CFLAGS   ?= -O2
LIBS     := -lsodium -lxxhash -lhiredis -lnghttp2 -lssl -lcrypto -lm -pthread
SANFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
TSANDIR  := $(BUILD)/tsan
TSANFLAGS:= -O1 -fno-omit-frame-pointer -fsanitize=thread

ifeq ($(V),1)
Q :=
else
Q := @
endif

SRC      := $(wildcard src/*.c)
LIBSRC   := $(filter-out src/main.c,$(SRC))
OBJ      := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRC))
SANOBJ   := $(patsubst src/%.c,$(SANDIR)/obj/%.o,$(SRC))
TSANOBJ  := $(patsubst src/%.c,$(TSANDIR)/obj/%.o,$(SRC))
DEMOSRC  := $(wildcard demo/*.c)
UNITSRC  := $(wildcard tests/unit/test_*.c)
UNITBIN  := $(patsubst tests/unit/%.c,$(SANDIR)/%,$(UNITSRC))

# Which src modules each unit test links with (default: the module of its name).
UNIT_DEPS_h1     := h1
UNIT_DEPS_cfg    := cfg cfg_kw shared shared_link shared_sentinel cfg_tls tls_ctx lb_hash persist srvstate server cookie seal stick log h1 cidr cfg_hint cfg_read hll
UNIT_DEPS_lb     := lb lb_rr lb_leastconn
UNIT_DEPS_lb_hash := lb_hash
UNIT_DEPS_buf    := buf
UNIT_DEPS_json   := json
UNIT_DEPS_seal   := seal
UNIT_DEPS_admin  := global shared shared_link shared_sentinel admin admin_sessions admin_server admin_pool server srvstate lb_hash lb lb_rr lb_leastconn json stats dashboard persist stick cookie seal log h1 h2_head ev cfg cfg_kw cfg_tls tls_ctx cidr cfg_hint cfg_read hll
UNIT_DEPS_stick  := stick
UNIT_DEPS_cookie := cookie
UNIT_DEPS_proxyproto := proxyproto
UNIT_DEPS_cidr := cidr
UNIT_DEPS_xprt := xprt_tcp buf
UNIT_DEPS_state  := state persist shared shared_link shared_sentinel srvstate server lb_hash stick cookie seal log h1 cfg cfg_kw cfg_tls tls_ctx cidr cfg_hint cfg_read hll
UNIT_DEPS_tls_ctx := tls_ctx
UNIT_DEPS_route  := route $(UNIT_DEPS_cfg)
UNIT_DEPS_shared_link := shared_link shared_sentinel
UNIT_DEPS_h2_head := h2_head h1

.PHONY: all deps test unit fuzz-replay integ demo bench fuzz clean install microbench tsan lab layers

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

$(TSANDIR)/obj/%.o: src/%.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  CC tsan $@"
	$(Q)$(CC) $(BASEFLAGS) $(TSANFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bollard: $(OBJ)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(BASEFLAGS) $(CFLAGS) -o $@ $^ $(LIBS)

$(SANDIR)/bollard: $(SANOBJ)
	@[ "$(V)" = 1 ] || echo "  LD san  $@"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $^ $(LIBS)

$(TSANDIR)/bollard: $(TSANOBJ)
	@[ "$(V)" = 1 ] || echo "  LD tsan $@"
	$(Q)$(CC) $(BASEFLAGS) $(TSANFLAGS) -o $@ $^ $(LIBS)

# The demo app links the clients of the session stores it can use (SPEC 14);
# "=" so pkg-config runs after demo's packages are installed.
DEMOLIBS = $(shell pkg-config --cflags libpq) -lhiredis -lmemcached -lpq -lsodium -pthread
$(BUILD)/.deps-demo: scripts/install-deps.sh
	$(Q)mkdir -p $(BUILD)
	$(Q)scripts/install-deps.sh build demo
	$(Q)touch $@

$(BUILD)/bollard-demo-app: $(DEMOSRC) $(wildcard demo/*.h) | $(DEPS_OK) $(BUILD)/.deps-demo
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) $(BASEFLAGS) $(CFLAGS) -Idemo -o $@ $(DEMOSRC) $(DEMOLIBS)

# ---- tests ---------------------------------------------------------------
$(BUILD)/.deps-test: scripts/install-deps.sh
	$(Q)mkdir -p $(BUILD)
	$(Q)scripts/install-deps.sh build test demo stores lab
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
UNIT_DEPS_fuzz_h2head := h2_head h1
UNIT_DEPS_fuzz_smuggle := h1 http cookie route lb_hash
UNIT_DEPS_fuzz_admin := $(UNIT_DEPS_admin)
UNIT_DEPS_fuzz_state := $(UNIT_DEPS_state)

$(SANDIR)/replay_%: fuzz/fuzz_%.c fuzz/replay.c $$(call unit_objs,$$(or $$(UNIT_DEPS_fuzz_$$*),$$*)) | $(BUILD)/.deps-test
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LD san  $@"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $^ $(LIBS)

# LD_PRELOAD shim counting heap allocations (tests/integ/test_no_alloc.py)
$(BUILD)/alloccount.so: tests/alloc/alloccount.c | $(DEPS_OK)
	@[ "$(V)" = 1 ] || echo "  LD      $@"
	$(Q)$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $<

test: $(BUILD)/.deps-test all $(SANDIR)/bollard $(TSANDIR)/bollard $(BUILD)/alloccount.so $(UNITBIN) $(FUZZREPLAY)
	$(Q)PYTHON=$(PYTHON) scripts/run-tests.sh

# The whole integration suite against the ThreadSanitizer build: the tables,
# counters, server list and configuration generations are shared between
# threads, and a data race there is a wrong server, not a crash. `make test`
# runs the thread-heavy part of it (scripts/run-tests.sh).
tsan: $(BUILD)/.deps-test all $(TSANDIR)/bollard $(BUILD)/alloccount.so
	$(Q)cd tests/integ && BOLLARD_BIN=$(CURDIR)/$(TSANDIR)/bollard $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

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

# examples/two-instances.conf twice, the demo apps and a redis-server of its own
.PHONY: demo-two
demo-two: all
	$(Q)scripts/install-deps.sh stores
	$(Q)$(PYTHON) scripts/demo-two.py

bench: all $(BUILD)/alloccount.so
	$(Q)scripts/install-deps.sh bench
	$(Q)$(PYTHON) bench/bench.py $(BENCH_ARGS)

# The alternatives lab (SPEC 14): real Redis, Memcached and PostgreSQL on
# loopback, every architecture behind bollard; lab/results/latest.md.
lab: all
	$(Q)scripts/install-deps.sh stores lab
	$(Q)$(PYTHON) lab/lab.py $(LAB_ARGS)

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

# Which module may call which (doc/architecture.md, "Layers"), checked on the
# release objects: no call to a higher layer, no cycle but the known ones.
layers: $(BUILD)/bollard
	$(Q)$(PYTHON) scripts/layers.py $(BUILD)/obj

# make install [PREFIX=/usr/local] [DESTDIR=staging] [SYSTEMDUNITDIR=dir]
# bollard to bin/; the demo application, which is not a production program,
# to libexec/bollard/; bollard(8) (its FILES paths rewritten to $(PREFIX))
# and bollard.conf(5) to share/man; example configurations and contrib/
# (Grafana, Prometheus) to share/doc/bollard; a default
# $(SYSCONFDIR)/bollard/bollard.conf (contrib/bollard.conf) only when there
# is none, so a reinstall never overwrites the operator's file. The systemd
# unit goes to $(PREFIX)/lib/systemd/system (a directory systemd searches
# for /usr and /usr/local alike) with its paths pointing at $(PREFIX)/bin,
# its sysusers.d(5) file (the `bollard` user) to $(SYSUSERSDIR);
# SYSTEMDUNITDIR= (empty) leaves both out. Installing for this machine (no
# DESTDIR, as root) also creates the `bollard` user when it is missing.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR   := $(PREFIX)/share/doc/bollard
LIBEXECDIR := $(PREFIX)/libexec/bollard
CONFDIR  := $(SYSCONFDIR)/bollard
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBEXECDIR) \
		$(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5 \
		$(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)/contrib $(DESTDIR)$(CONFDIR)
	install -m 0755 $(BUILD)/bollard $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(BUILD)/bollard-demo-app $(DESTDIR)$(LIBEXECDIR)/
	sed 's|/usr/local/|$(PREFIX)/|g; s|/etc/bollard/|$(CONFDIR)/|g' doc/bollard.8 \
		> $(DESTDIR)$(PREFIX)/share/man/man8/bollard.8
	chmod 0644 $(DESTDIR)$(PREFIX)/share/man/man8/bollard.8
	install -m 0644 doc/bollard.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 examples/*.conf $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 contrib/grafana-dashboard.json contrib/prometheus.yml \
		contrib/bollard.conf $(DESTDIR)$(DOCDIR)/contrib/
	@if [ -e $(DESTDIR)$(CONFDIR)/bollard.conf ]; then \
		echo "install: kept the existing $(DESTDIR)$(CONFDIR)/bollard.conf"; \
	else \
		echo "install -m 0644 contrib/bollard.conf $(DESTDIR)$(CONFDIR)/bollard.conf"; \
		install -m 0644 contrib/bollard.conf $(DESTDIR)$(CONFDIR)/bollard.conf; \
	fi
ifneq ($(SYSTEMDUNITDIR),)
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g; s|/etc/bollard/|$(CONFDIR)/|g' contrib/bollard.service \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/bollard.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/bollard.service
	install -m 0644 contrib/bollard.sysusers $(DESTDIR)$(SYSUSERSDIR)/bollard.conf
endif
	@# the unit's user, on this machine only (a package creates it at its own install)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ! getent passwd bollard >/dev/null; then \
		if command -v systemd-sysusers >/dev/null; then \
			echo "systemd-sysusers contrib/bollard.sysusers"; \
			systemd-sysusers contrib/bollard.sysusers; \
		else \
			echo "useradd --system --user-group bollard"; \
			useradd --system --user-group --home-dir /var/lib/bollard --no-create-home \
				--shell /usr/sbin/nologin bollard; \
		fi; \
	fi

clean:
	rm -rf $(BUILD)

-include $(OBJ:.o=.d) $(SANOBJ:.o=.d) $(TSANOBJ:.o=.d)

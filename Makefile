# edgevisor - the two commands are `make run` and `make test` (see README.md).
# Everything builds into $(BUILD); `make asan-test` builds and tests with ASan+UBSan
# in build-asan.

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
SAN      ?=
CFLAGS   ?= -O2 -g
WARN      = -std=c11 -Wall -Wextra -Werror -Wmissing-prototypes -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -Iworker -Icommon
ALL_CFLAGS = $(WARN) $(CFLAGS) $(SAN) -fno-strict-aliasing -MMD -MP

SV_LIBS  = -levent -ljansson -lcgroup -lsystemd -lseccomp -lhttp_parser
WK_LIBS  = -levent -lhttp_parser -lwslay -lnettle -ldl -lpthread -lseccomp -lsqlite3
# edgevisorctl top draws with ncurses (libncurses-dev): wide-character build if present.
CURSES_PC := $(shell pkg-config --exists ncursesw && echo ncursesw || echo ncurses)
CURSES_CFLAGS := $(shell pkg-config --cflags $(CURSES_PC))
CTL_LIBS = -levent -ljansson -lhttp_parser -lsqlite3 $(shell pkg-config --libs $(CURSES_PC))
# libpq: the PostgreSQL backend of durable tasks (worker/durable_pg.c). Its headers
# only: the library is dlopen()ed by worker/pq_lazy.c when such a store is opened.
PQ_CFLAGS := $(shell pkg-config --cflags libpq)
CPPFLAGS += $(PQ_CFLAGS)

COMMON_SRC = $(wildcard common/*.c)
SV_SRC     = $(wildcard supervisor/*.c)
WK_SRC     = $(wildcard worker/*.c)
CTL_SRC    = $(wildcard ctl/*.c)
EX_SRC     = $(wildcard examples/*.c)
FN_SRC     = $(wildcard tests/functions/*.c)
UNIT_SRC   = $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

SV_MAIN_OBJ = $(call obj,$(SV_SRC))
COMMON_OBJ  = $(call obj,$(COMMON_SRC))
WK_OBJ      = $(call obj,$(WK_SRC))
# The journal's code, also linked into the supervisor (counts, durable_watch.c) and
# edgevisorctl (tasks, ctl/tasks.c), which read it themselves.
STORE_OBJ   = $(call obj,worker/durable_store.c worker/durable_local.c worker/durable_pg.c worker/pq_lazy.c)

BINS = $(BUILD)/edgevisor $(BUILD)/edgevisor-worker $(BUILD)/edgevisorctl
# The fetch bench's baseline (4 blocking threads with libcurl easy): scripts/bench.sh.
BENCH_BINS = $(BUILD)/scripts/fetch_threads $(BUILD)/scripts/hist_cost
# fork against clone(CLONE_VM | CLONE_VFORK) at the supervisor's size (bench.sh, reload500).
BENCH_BINS += $(BUILD)/scripts/spawn_cost
# The PostgreSQL store driven directly (test_durable_pg.py, the bench's durable phase).
BENCH_BINS += $(BUILD)/tests/durable_pg_drive
EXAMPLES = $(patsubst examples/%.c,$(BUILD)/examples/%.so,$(EX_SRC))
TEST_FNS = $(patsubst tests/functions/%.c,$(BUILD)/tests/functions/%.so,$(FN_SRC))
UNIT_BINS = $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))

.PHONY: all deps run test unit asan asan-test bench soak fuzz install clean format

all: $(BINS) $(EXAMPLES) $(TEST_FNS) $(UNIT_BINS) $(BENCH_BINS)

deps:
	@scripts/deps.sh

run: deps all
	$(BUILD)/edgevisor -c supervisor.conf

test: deps all
	@tests/run.sh $(BUILD)

asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" CFLAGS="-O1 -g" all

asan-test: deps asan
	@ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 tests/run.sh build-asan

bench: deps all
	@scripts/bench.sh $(BUILD)

# Long variants of the fault and hostile-tenant tests (SOAK=N: 10 s x N storm).
soak: deps all
	@tests/soak/run.sh $(BUILD) $(or $(SOAK),12)

# libFuzzer targets (clang, ASan+UBSan): `make fuzz` runs each for FUZZ_SECONDS
# from the seed corpora in tests/fuzz/corpus/ (tests/fuzz/run.sh).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS    = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-fno-omit-frame-pointer -O1 -g
FUZZ_HTTP_SRC   = tests/fuzz/fuzz_http.c worker/http.c worker/http_parse.c worker/ws.c $(COMMON_SRC)
FUZZ_CONFIG_SRC = tests/fuzz/fuzz_config.c supervisor/config.c supervisor/cgroup_path.c supervisor/dsn_file.c \
		  supervisor/identity.c supervisor/seccomp_profile.c $(COMMON_SRC)
FUZZ_WIRE_SRC   = tests/fuzz/fuzz_wire.c $(COMMON_SRC)
FUZZ_BINS       = $(BUILD)/fuzz/fuzz_http $(BUILD)/fuzz/fuzz_config $(BUILD)/fuzz/fuzz_wire

fuzz: deps $(FUZZ_BINS)
	@tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS)

$(BUILD)/fuzz/fuzz_http: $(FUZZ_HTTP_SRC) $(wildcard worker/*.h common/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_FLAGS) -o $@ $(FUZZ_HTTP_SRC) -levent -lhttp_parser -lwslay -lnettle

$(BUILD)/fuzz/fuzz_config: $(FUZZ_CONFIG_SRC) $(wildcard supervisor/*.h common/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_FLAGS) -o $@ $(FUZZ_CONFIG_SRC) -ljansson -lseccomp -lhttp_parser

$(BUILD)/fuzz/fuzz_wire: $(FUZZ_WIRE_SRC) $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_FLAGS) -o $@ $(FUZZ_WIRE_SRC) -lhttp_parser

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# The supervisor reads the journals' counts (supervisor/durable_watch.c).
$(BUILD)/edgevisor: $(SV_MAIN_OBJ) $(COMMON_OBJ) $(STORE_OBJ)
	$(CC) $(SAN) -o $@ $^ $(SV_LIBS) -lsqlite3 -ldl -lpthread

$(BUILD)/obj/ctl/top.o $(BUILD)/obj/ctl/top_view.o: CPPFLAGS += $(CURSES_CFLAGS)

$(BUILD)/edgevisorctl: $(call obj,$(CTL_SRC)) $(COMMON_OBJ) $(STORE_OBJ) $(call obj,supervisor/dsn_file.c)
	$(CC) $(SAN) -o $@ $^ $(CTL_LIBS) -ldl -lpthread

# The worker exports only the edge_* API to the function it loads.
$(BUILD)/edgevisor-worker: $(WK_OBJ) $(COMMON_OBJ) worker/exports.list
	$(CC) $(SAN) -Wl,--dynamic-list=worker/exports.list -o $@ $(WK_OBJ) $(COMMON_OBJ) $(WK_LIBS)

$(BUILD)/scripts/fetch_threads: scripts/fetch_threads.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SAN) -o $@ $< -lcurl -lpthread

# What timing a request into the latency histogram costs (bench.sh, phase wrk).
$(BUILD)/scripts/hist_cost: scripts/hist_cost.c common/hist.c common/hist.h common/clock.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SAN) -o $@ scripts/hist_cost.c common/hist.c

# What starting a child costs the starting thread, fork against vfork-style (bench.sh).
$(BUILD)/scripts/spawn_cost: scripts/spawn_cost.c common/clock.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SAN) -o $@ scripts/spawn_cost.c

$(BUILD)/tests/durable_pg_drive: $(BUILD)/obj/tests/durable_pg_drive.o $(BUILD)/obj/worker/durable_pg.o \
		$(BUILD)/obj/worker/durable_store.o $(BUILD)/obj/worker/durable_local.o \
		$(BUILD)/obj/worker/pq_lazy.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ -lsqlite3 -lhttp_parser -ldl -lpthread

# Functions leave edge_* undefined: the worker provides them at dlopen time.
# -MMD: a function built against a header it includes besides edgevisor.h (a test
# function speaking the wire format by hand) is rebuilt when that header changes.
$(BUILD)/examples/%.so: examples/%.c worker/edgevisor.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SAN) -MMD -MP -fPIC -shared -o $@ $< -lpthread $(EX_LIBS)

# The upload example hashes with nettle (?hash=1).
$(BUILD)/examples/upload.so: EX_LIBS = -lnettle

$(BUILD)/tests/functions/%.so: tests/functions/%.c worker/edgevisor.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SAN) -MMD -MP -fPIC -shared -o $@ $< -lpthread

# A unit test links common/ plus the sources named in UNIT_DEPS_<test>.
# The config's own dependencies: the cgroup_parent check, dynamic uids, seccomp names.
CONF_DEPS = supervisor/config.c supervisor/cgroup_path.c supervisor/identity.c supervisor/dsn_file.c \
	supervisor/seccomp_profile.c
UNIT_DEPS_test_config = $(CONF_DEPS)
UNIT_DEPS_test_cgroup = supervisor/cgroup.c supervisor/cgroup_fs.c $(CONF_DEPS)
UNIT_DEPS_test_tasks  = worker/tasks.c worker/hooks.c
UNIT_DEPS_test_fetch_allow = worker/fetch_allow.c
UNIT_DEPS_test_durable = worker/durable_retry.c worker/durable_store.c worker/durable_local.c
UNIT_DEPS_test_lifecycle = supervisor/lifecycle.c supervisor/evq.c supervisor/cgroup.c \
	supervisor/cgroup_fs.c $(CONF_DEPS)
UNIT_DEPS_test_reload = supervisor/reload.c $(CONF_DEPS)
UNIT_DEPS_test_top_model = ctl/top_model.c ctl/top_text.c ctl/units.c
UNIT_DEPS_test_admission = supervisor/admission.c
UNIT_DEPS_test_admin_job = supervisor/admin_job.c supervisor/admin_reply.c supervisor/loop_thread.c
UNIT_DEPS_test_check  = supervisor/check.c supervisor/child.c supervisor/cgroup.c supervisor/cgroup_fs.c \
	$(CONF_DEPS)

.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(COMMON_OBJ) $$(call obj,$$(UNIT_DEPS_$$*))
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(SV_LIBS) $(WK_LIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/edgevisor \
	    $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/share/edgevisor
	install -m 755 $(BUILD)/edgevisor $(DESTDIR)$(PREFIX)/bin/edgevisor
	install -m 755 $(BUILD)/edgevisor-worker $(DESTDIR)$(PREFIX)/libexec/edgevisor/edgevisor-worker
	install -m 755 $(BUILD)/edgevisorctl $(DESTDIR)$(PREFIX)/bin/edgevisorctl
	install -m 644 worker/edgevisor.h $(DESTDIR)$(PREFIX)/include/edgevisor.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' scripts/edgevisor.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/edgevisor.pc
	install -m 644 supervisor.conf $(DESTDIR)$(PREFIX)/share/edgevisor/supervisor.conf.example
	install -m 755 scripts/rolling-deploy.sh $(DESTDIR)$(PREFIX)/share/edgevisor/rolling-deploy.sh
	install -d $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 644 man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	$(if $(wildcard scripts/edgevisor.service),install -m 644 scripts/edgevisor.service $(DESTDIR)$(PREFIX)/share/edgevisor/edgevisor.service)

format:
	clang-format -i $(COMMON_SRC) $(SV_SRC) $(WK_SRC) $(CTL_SRC) common/*.h supervisor/*.h worker/*.h

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj $(BUILD)/examples $(BUILD)/tests/functions -name '*.d' 2>/dev/null)

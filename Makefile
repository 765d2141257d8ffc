# Build, test and demo for ngx_http_acme_module.
#   make            build build/ngx_http_acme_module.so and ngx_stream_acme_module.so
#                   against Debian's nginx-dev (or NGINX_SRC=<nginx source tree>)
#   make install    copy the modules into nginx's modules directory
#   make test       install what is missing, then unit and integration tests
#   make deb        build libnginx-mod-http-acme_<version>_<arch>.deb and
#                   libnginx-mod-stream-acme_<version>_<arch>.deb (dh, dh_nginx)
#   make ... DISTRO=trixie|sid   the same inside a Debian 13 / sid tree (.deps/distro)
#   make test SANITIZE=address,undefined   the same with the unit tests and the
#                   module built with gcc's ASan and UBSan, into build-sanitize/
#                   (nginx runs with their runtimes preloaded); any report
#                   fails; `make unit SANITIZE=...` runs the unit tests alone
#   make demo       local Pebble + nginx: watch a certificate being issued
#   make bench      time-to-certificate and handshake figures (not a test)
#   make bench-client-hello  cost of the tls-alpn-01 ClientHello check
#   make bench-variables     $acme_certificate vs static vs per-handshake loading
#   make bench-idle          helper CPU while idle with 1,000 certificates
#   make bench-scale         10,000 stored certificates: nginx -t, start, reload,
#                   memory, renewals, idle helper, against static files
#   make bench-issue     1,000 certificates from an empty store, 4 Pebbles;
#                   BENCH_MOD_MD=1 also Apache mod_md for the same names
#   make bench-zone-swap     zone work per renewal and worker at 10,000
#   make valgrind-renewals  nginx (master_process off) under valgrind: leaks
#                   after 10 and after 100 renewals must be the same (~10 min)
#   make fuzz       build the libFuzzer targets (t/fuzz/, clang-14, ASan and
#                   UBSan) into build/fuzz/ and run each for FUZZ_SECONDS
#                   (default 60); FUZZ_TARGETS=<names> picks some

SHELL       := /bin/bash
NGINX_SRC   ?= /usr/share/nginx/src
SANITIZE    ?=
ifeq ($(SANITIZE),)
BUILD       ?= $(CURDIR)/build
else
# A build of its own, so that the normal one is not overwritten.
BUILD       ?= $(CURDIR)/build-sanitize
endif
MODULE      := $(BUILD)/ngx_http_acme_module.so
# Built with it (same addon config and rule); tests find it next to MODULE.
STREAM_MODULE := $(BUILD)/ngx_stream_acme_module.so
MODULES_DIR ?= /usr/lib/nginx/modules
DEPS        := $(CURDIR)/.deps
PEBBLE_DIR  ?= $(DEPS)/pebble

ENGINE_SRCS := $(wildcard src/acme/*.cpp)
ENGINE_HDRS := $(wildcard src/acme/*.h)
GLUE_SRCS   := $(wildcard src/ngx/*.cpp)
GLUE_HDRS   := $(wildcard src/ngx/*.h)
STREAM_SRCS := $(wildcard src/stream/*.cpp) src/stream/exports.map
UNIT_SRCS   := $(wildcard t/unit/*.cpp)
UNIT_HDRS   := $(wildcard t/unit/*.h)

CXX         ?= g++
UNIT_FLAGS  := -std=c++17 -g -O1 -Wall -Wextra -Werror -Isrc -pthread
UNIT_LIBS   := -lgtest -lgtest_main -lcurl -ljansson -lhiredis -lssl -lcrypto -lresolv -lldns -pthread

# SANITIZE: gcc's sanitizers for the unit tests and the module. The first
# report stops the process (-fno-sanitize-recover, halt_on_error), so that
# it cannot go unnoticed. Reports of nginx processes go to files under
# SANITIZER_LOGS (nginx sends its stderr to the error log, and workers run
# as nobody, hence mode 1777); `make integration` fails when there is one.
# nginx itself is not instrumented: its leaks at exit are not ours
# (detect_leaks=0 there; the unit tests and valgrind-renewals look for ours).
ifneq ($(SANITIZE),)
SAN_FLAGS   := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
UNIT_FLAGS  += $(SAN_FLAGS)
UNIT_LIBS   += $(SAN_FLAGS)
SAN_RUNTIME := $(if $(findstring address,$(SANITIZE)),$(realpath $(shell $(CC) -print-file-name=libasan.so))) \
               $(if $(findstring undefined,$(SANITIZE)),$(realpath $(shell $(CC) -print-file-name=libubsan.so)))
SANITIZER_LOGS := $(BUILD)/sanitizer-reports
SAN_SUPP    := $(CURDIR)/t/sanitizer
SAN_UNIT_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1:suppressions=$(SAN_SUPP)/asan.supp \
                LSAN_OPTIONS=suppressions=$(SAN_SUPP)/lsan.supp:print_suppressions=0 \
                UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:suppressions=$(SAN_SUPP)/ubsan.supp
SAN_NGINX_ENV := ACME_TEST_NGINX_PRELOAD="$(strip $(SAN_RUNTIME))" \
                ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$(SANITIZER_LOGS)/asan:suppressions=$(SAN_SUPP)/asan.supp \
                UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$(SANITIZER_LOGS)/ubsan:suppressions=$(SAN_SUPP)/ubsan.supp
# Read by ./config when nginx's configure runs.
export NGX_ACME_SANITIZE := $(SANITIZE)
SAN_CHECK   := if [ -n "$$(ls -A $(SANITIZER_LOGS))" ]; then \
                   echo "sanitizer reports from nginx processes:"; head -100 $(SANITIZER_LOGS)/*; exit 1; fi
else
SAN_CHECK   := true
endif

.PHONY: all install deps unit integration check test deb demo bench bench-variables bench-idle bench-client-hello bench-scale bench-issue bench-zone-swap clean format format-check fuzz fuzz-build valgrind-renewals

JOBS        ?= $(shell nproc)

ifneq ($(DISTRO),)
# DISTRO=trixie|sid: the same targets inside a Debian 13 / sid tree made by
# scripts/distro.sh (debootstrap, kept in .deps/distro/$(DISTRO)), with that
# distribution's nginx, nginx-dev, g++ and OpenSSL; the checkout is /src
# there, and the build goes to build/$(DISTRO).
IN_TREE     := bash scripts/distro.sh $(DISTRO) run make BUILD=/src/build/$(DISTRO) JOBS=$(JOBS) \
               $(if $(TESTS),TESTS="$(TESTS)")

all deb unit integration check:
	$(IN_TREE) $@

test: deps
	$(IN_TREE) check

deps:
	@bash scripts/setup-deps.sh

clean:
	rm -rf $(CURDIR)/build/$(DISTRO)

else

all: $(MODULE)

# nginx's configure writes a Makefile into its current directory, so it runs
# in a private copy of the nginx source tree. It lists the sources, so an
# added or removed file (a change of the directories) configures again. The
# build directory is given relative to that copy: nginx's auto/make turns
# ".c" into ".o" anywhere in an object path, so an absolute one broke the
# build of a checkout whose path contains ".c" (say /tmp/tmp.c1JSZKmD7R).
$(BUILD)/objs/Makefile: config src/acme src/ngx src/stream
	@test -d $(NGINX_SRC) || { echo "no nginx sources at $(NGINX_SRC): run 'make deps' or set NGINX_SRC"; exit 1; }
	rm -rf $(BUILD)/nginx && mkdir -p $(BUILD) && cp -a $(NGINX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && if [ -f conf_flags ]; then \
	    . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(CURDIR) --builddir=../objs; \
	  else \
	    ./configure --with-compat --with-http_ssl_module --with-threads --add-dynamic-module=$(CURDIR) --builddir=../objs; \
	  fi >$(BUILD)/configure.log 2>&1 || { tail -30 $(BUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/objs/Makefile $(ENGINE_SRCS) $(ENGINE_HDRS) $(GLUE_SRCS) $(GLUE_HDRS) src/ngx/exports.map $(STREAM_SRCS)
	$(MAKE) -C $(BUILD)/nginx -f $(BUILD)/objs/Makefile modules
	# A running nginx may have the module mapped: replace the file, never rewrite it.
	cp $(BUILD)/objs/ngx_http_acme_module.so $(MODULE).tmp && mv -f $(MODULE).tmp $(MODULE)
	cp $(BUILD)/objs/ngx_stream_acme_module.so $(STREAM_MODULE).tmp && mv -f $(STREAM_MODULE).tmp $(STREAM_MODULE)

# The Debian package, for the distribution make runs on (scripts/build-deb.sh).
DEB_VERSION := $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null)
DEB         := $(BUILD)/libnginx-mod-http-acme_$(DEB_VERSION)_$(DEB_ARCH).deb

deb: $(DEB)

$(DEB): config $(ENGINE_SRCS) $(ENGINE_HDRS) $(GLUE_SRCS) $(GLUE_HDRS) src/ngx/exports.map $(STREAM_SRCS) $(wildcard debian/* debian/source/*) scripts/build-deb.sh
	bash scripts/build-deb.sh $(BUILD) $(JOBS)

install: $(MODULE)
	install -m 0644 $(MODULE) $(MODULES_DIR)/ngx_http_acme_module.so
	install -m 0644 $(STREAM_MODULE) $(MODULES_DIR)/ngx_stream_acme_module.so

deps:
	@bash scripts/setup-deps.sh

UNIT_OBJS   := $(patsubst %.cpp,$(BUILD)/unit/%.o,$(ENGINE_SRCS) $(UNIT_SRCS))

$(BUILD)/unit/%.o: %.cpp $(ENGINE_HDRS) $(UNIT_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(UNIT_FLAGS) -c -o $@ $<

$(BUILD)/unit-tests: $(UNIT_OBJS)
	$(CXX) $(UNIT_FLAGS) -o $@ $(UNIT_OBJS) $(UNIT_LIBS)

unit: $(BUILD)/unit-tests
	$(SAN_UNIT_ENV) $(BUILD)/unit-tests

# On failure, the failed scripts' logs come after prove's summary, and
# then one line per failed script (what a CI log's tail shows).
FAILURE_LOG := $(BUILD)/integration-failures.log
# The integration test scripts (TESTS="t/10-first-light.t t/40-tls-alpn.t").
TESTS       ?= t/

integration: $(MODULE)
	@rm -f $(FAILURE_LOG)
ifneq ($(SANITIZE),)
	rm -rf $(SANITIZER_LOGS) && mkdir -p -m 1777 $(SANITIZER_LOGS)
endif
	$(SAN_NGINX_ENV) ACME_MODULE=$(MODULE) PEBBLE_DIR=$(PEBBLE_DIR) ACME_TEST_FAILURE_LOG=$(abspath $(FAILURE_LOG)) \
	    $(if $(wildcard $(DEB)),ACME_DEB=$(DEB)) prove -j2 -I t/lib $(TESTS) || { \
	    cat $(FAILURE_LOG) 2>/dev/null; echo "=== failed test scripts"; grep '^=== t/' $(FAILURE_LOG) 2>/dev/null; \
	    $(SAN_CHECK); exit 1; }
	@$(SAN_CHECK)

test: deps
	$(MAKE) format-check
	$(MAKE) check

# What test runs after the format check, on the host or in a tree: the
# package is built for t/70-debian-package.t.
check:
	$(MAKE) -j$(JOBS) $(BUILD)/unit-tests $(MODULE)
	$(MAKE) deb
	$(MAKE) unit
	$(MAKE) integration

demo: deps $(MODULE)
	ACME_MODULE=$(MODULE) PEBBLE_DIR=$(PEBBLE_DIR) perl -I t/lib scripts/demo.pl

bench: deps $(MODULE)
	ACME_MODULE=$(MODULE) PEBBLE_DIR=$(PEBBLE_DIR) perl -I t/lib scripts/bench.pl

# $acme_certificate against static files and nginx's per-handshake loading.
bench-variables: deps $(MODULE)
	ACME_MODULE=$(MODULE) PEBBLE_DIR=$(PEBBLE_DIR) perl -I t/lib scripts/bench-variables.pl

# Helper CPU while idle with 1,000 managed certificates (takes minutes).
bench-idle: deps $(MODULE)
	ACME_MODULE=$(MODULE) PEBBLE_DIR=$(PEBBLE_DIR) perl -I t/lib scripts/bench-idle.pl 1000 120

# 10,000 certificates already in the store (BENCH_N=...), against the same
# names as static files (docs/performance.md, "At scale"; takes minutes).
BENCH_N     ?= 10000
$(BUILD)/bench-make-store: scripts/bench_make_store.cpp src/acme/storage.cpp src/acme/crypto.cpp src/acme/base64url.cpp src/acme/identifier.cpp $(ENGINE_HDRS)
	@mkdir -p $(BUILD)
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -Isrc -o $@ $(filter %.cpp,$^) -lssl -lcrypto

$(BUILD)/bench-zone-swap: scripts/bench_zone_swap.cpp src/acme/shared_state.cpp src/acme/shm_area.cpp $(ENGINE_HDRS)
	@mkdir -p $(BUILD)
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -Isrc -o $@ $(filter %.cpp,$^)
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -Isrc -DCOMPARE_ALL -o $@-all $(filter %.cpp,$^)

bench-zone-swap: $(BUILD)/bench-zone-swap
	$(BUILD)/bench-zone-swap $(BENCH_N) && $(BUILD)/bench-zone-swap-all $(BENCH_N)

# Issuing from an empty store over several Pebbles (docs/performance.md,
# "Issuing 1,000 and 10,000"): BENCH_ISSUE="N PEBBLES ORDERS".
BENCH_ISSUE ?= 1000 4 4
bench-issue: deps $(MODULE)
	ACME_MODULE=$(MODULE) PEBBLE_DIR=$(PEBBLE_DIR) perl -I t/lib scripts/bench-issue.pl $(BENCH_ISSUE)

bench-scale: deps $(MODULE) $(BUILD)/bench-make-store
	ACME_MODULE=$(MODULE) PEBBLE_DIR=$(PEBBLE_DIR) BENCH_MAKE_STORE=$(BUILD)/bench-make-store \
	    perl -I t/lib scripts/bench-scale.pl $(BENCH_N)

# Leaks that grow with the number of renewals (docs/reliability.md).
valgrind-renewals: deps $(MODULE)
	ACME_MODULE=$(MODULE) PEBBLE_DIR=$(DEPS)/pebble perl -I t/lib scripts/valgrind-renewals.pl

$(BUILD)/bench-client-hello: scripts/bench_client_hello.cpp src/acme/tls_alpn.cpp src/acme/crypto.cpp src/acme/base64url.cpp $(ENGINE_HDRS)
	@mkdir -p $(BUILD)
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -Isrc -o $@ $(filter %.cpp,$^) -lssl -lcrypto

bench-client-hello: $(BUILD)/bench-client-hello
	$(BUILD)/bench-client-hello

# libFuzzer targets, one per parser of outside data (t/fuzz/<name>.cpp,
# seeds in t/fuzz/corpus/<name>/). The engine is compiled once with the
# same sanitizers and coverage instrumentation into an archive, so each
# target links only the objects it uses.
FUZZ_CXX     ?= clang++-14
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_SRCS    := $(wildcard t/fuzz/*.cpp)
FUZZ_HDRS    := $(wildcard t/fuzz/*.h)
FUZZ_TARGETS ?= $(patsubst t/fuzz/%.cpp,%,$(FUZZ_SRCS))
FUZZ_FLAGS   := -std=c++17 -g -O1 -Wall -Wextra -Werror -Isrc -It/fuzz -pthread \
                -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_LIBS    := -lcurl -ljansson -lhiredis -lssl -lcrypto -lresolv -lldns -pthread
FUZZ_OBJS    := $(patsubst src/acme/%.cpp,$(FUZZ_BUILD)/engine/%.o,$(ENGINE_SRCS))

$(FUZZ_BUILD)/engine/%.o: src/acme/%.cpp $(ENGINE_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/libacme.a: $(FUZZ_OBJS)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/%: t/fuzz/%.cpp $(FUZZ_HDRS) $(ENGINE_HDRS) $(FUZZ_BUILD)/libacme.a
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libacme.a $(FUZZ_LIBS)

fuzz-build: $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TARGETS))

fuzz: fuzz-build
	bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

FORMATTED   := $(ENGINE_SRCS) $(ENGINE_HDRS) $(GLUE_SRCS) $(GLUE_HDRS) $(UNIT_SRCS) $(UNIT_HDRS) \
               $(FUZZ_SRCS) $(FUZZ_HDRS)

format:
	clang-format -i $(FORMATTED)

format-check:
	@clang-format --dry-run --Werror $(FORMATTED)

clean:
	rm -rf $(BUILD)

endif

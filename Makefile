# emrwatch — the two commands a newcomer needs are `make demo` and `make test`.

CARGO ?= cargo
DEMO_BIN := target/debug/emrwatch
DEMO_STORE := target/demo-store
DEMO_HOSPITAL := target/demo-hospital

.PHONY: demo test test-deps bench lint fmt fuzz

## Build (the dev profile shared with the tests, see README "Build profiles"), generate a hospital, ingest it, detect, score the alerts.
demo: $(DEMO_BIN)
	rm -rf $(DEMO_STORE) $(DEMO_HOSPITAL)
	$(DEMO_BIN) gen --out $(DEMO_HOSPITAL) --events 200000 --days 14 --seed 2026
	$(DEMO_BIN) ingest $(DEMO_HOSPITAL)/logs/ $(DEMO_HOSPITAL)/syslog/ --store $(DEMO_STORE)
	@echo; echo "== Detection: every rule in queries/ over the store, worst first"
	$(DEMO_BIN) detect --store $(DEMO_STORE) --ref $(DEMO_HOSPITAL)/ref --out $(DEMO_STORE)/alerts.jsonl --show 15
	@echo; echo "== Scored against the incidents the generator injected ($(DEMO_HOSPITAL)/labels.csv)"
	$(DEMO_BIN) eval --labels $(DEMO_HOSPITAL)/labels.csv --alerts $(DEMO_STORE)/alerts.jsonl
	@echo; echo "== Who opened the most distinct charts (SQL, with the detection functions)"
	$(DEMO_BIN) sql --store $(DEMO_STORE) -e "SELECT user_id, distinct_count(patient_id) AS patients, round(robust_z(distinct_count(patient_id)) OVER (), 1) AS robust_z FROM access_events GROUP BY user_id ORDER BY patients DESC LIMIT 5"
	@echo; echo "== The hosts' logs (syslog, normalised): what happened on them"
	$(DEMO_BIN) sql --store $(DEMO_STORE) -e "SELECT event_type, count(*) AS n, count(DISTINCT host) AS hosts, count(DISTINCT src_ip) AS addresses FROM system_events GROUP BY event_type ORDER BY n DESC"
	@echo; echo "Try it yourself: $(DEMO_BIN) sql --store $(DEMO_STORE) --ref $(DEMO_HOSPITAL)/ref   (tables: access_events, system_events, alerts, rejects, staff, patients, encounters)"

# Cargo decides whether anything needs rebuilding.
.PHONY: $(DEMO_BIN)
$(DEMO_BIN):
	$(CARGO) build --bin emrwatch

## Every test: unit tests and the one integration-test binary (dev profile, one build).
test: test-deps
	$(CARGO) test --all-targets

# The servers the tests start themselves on 127.0.0.1: moto (an S3-compatible
# server, pinned, in its own venv) and rsyslog with its OpenSSL driver (a
# Debian package: .ci/run installs it as root; see README "Tests").
TEST_VENV := target/test-venv
MOTO_VERSION := 5.1.22
test-deps: $(TEST_VENV)/bin/moto_server
	@command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || { echo "rsyslogd is missing: sudo apt-get install -y rsyslog rsyslog-openssl" >&2; exit 1; }
	@command -v openssl >/dev/null 2>&1 || { echo "openssl is missing: sudo apt-get install -y openssl" >&2; exit 1; }

$(TEST_VENV)/bin/moto_server:
	python3 -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/pip install --quiet 'moto[server]==$(MOTO_VERSION)'

## Ingest side by side with DuckDB (installed into target/bench-venv) and arrow-json; writes benches/RESULTS.md.
bench:
	python3 benches/bench.py

## Fuzz every decoder for FUZZ_SECONDS each (nightly and cargo-fuzz; not in CI). Keep what it finds: see README.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := fhir ndjson csv syslog atna auto
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	# --dev: a release build of the whole stack with AddressSanitizer takes too long on 2 cores.
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && \
		$(CARGO) +nightly fuzz run --dev $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536 || exit 1; \
	done

lint:
	$(CARGO) fmt --all -- --check
	rustfmt --edition 2024 --check fuzz/src/lib.rs fuzz/fuzz_targets/*.rs
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

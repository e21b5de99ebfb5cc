# emrwatch — the two commands a newcomer needs are `make demo` and `make test`.

CARGO ?= cargo
DEMO_BIN := target/debug/emrwatch
DEMO_STORE := target/demo-store
DEMO_HOSPITAL := target/demo-hospital

.PHONY: demo test bench lint fmt

## Build (the dev profile shared with the tests, see README "Build profiles"), generate a hospital, ingest its access log, run a few queries.
demo: $(DEMO_BIN)
	rm -rf $(DEMO_STORE) $(DEMO_HOSPITAL)
	$(DEMO_BIN) gen --out $(DEMO_HOSPITAL) --events 200000 --days 14 --seed 2026
	$(DEMO_BIN) ingest $(DEMO_HOSPITAL)/logs/ --store $(DEMO_STORE)
	@echo; echo "== Events per action"
	$(DEMO_BIN) sql --store $(DEMO_STORE) -e "SELECT action, count(*) AS events, count(DISTINCT patient_id) AS patients FROM access_events GROUP BY action ORDER BY events DESC"
	@echo; echo "== Who opened the most distinct charts"
	$(DEMO_BIN) sql --store $(DEMO_STORE) -e "SELECT user_id, user_role, count(DISTINCT patient_id) AS patients, count(*) AS events FROM access_events GROUP BY 1, 2 ORDER BY patients DESC LIMIT 5"
	@echo; echo "== Break-the-glass overrides per day"
	$(DEMO_BIN) sql --store $(DEMO_STORE) -e "SELECT event_date, count(*) AS overrides, count(DISTINCT user_id) AS users FROM access_events WHERE action = 'break_glass' GROUP BY 1 ORDER BY 1"
	@echo; echo "== Failed logins by source address"
	$(DEMO_BIN) sql --store $(DEMO_STORE) -e "SELECT src_ip, count(*) AS failures FROM access_events WHERE action = 'login_failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
	@echo; echo "== Incidents injected into $(DEMO_HOSPITAL) (labels.csv), for the detection rules to find"
	@tail -n +2 $(DEMO_HOSPITAL)/labels.csv | cut -d, -f1 | sort | uniq -c
	@echo; echo "Try it yourself: $(DEMO_BIN) sql --store $(DEMO_STORE)"

# Cargo decides whether anything needs rebuilding.
.PHONY: $(DEMO_BIN)
$(DEMO_BIN):
	$(CARGO) build --bin emrwatch

## Every test: unit tests and the one integration-test binary (dev profile, one build).
test:
	$(CARGO) test --all-targets

## Ingest side by side with DuckDB (installed into target/bench-venv) and arrow-json; writes benches/RESULTS.md.
bench:
	python3 benches/bench.py

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

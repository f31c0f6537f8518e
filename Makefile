# hotline-bot — every set-up step a fresh machine needs is here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
LOCK   := requirements/test.txt
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)

.PHONY: run test bench lint typecheck install lock browser fonts xlsxlib nginx promtool clean
CHROMIUM := /usr/bin/chromium
NGINX := /usr/sbin/nginx
PROMTOOL := /usr/bin/promtool
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
XLSXLIB := xlsxwriter
## $(call apt,PACKAGE[,THEN]): PACKAGE installed from Debian's archive when apt-get can (as root), then THEN; fails
## where it cannot, for the target's message to say what is missing
apt = { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && { apt-get update -qq >/dev/null; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; $(2) }; }

## the environment is installed from the lock file, every package checked against its hash (requirements/test.txt:
## the bot's packages and the tests'; requirements/run.txt: the bot's only, for a deployment), then the bot itself
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*; touch $@

## make lock: the lock files again, with the newest releases pyproject.toml's ranges admit (docs/operations.md says
## when); then make test, and commit the three files together
PIP_TOOLS := pip-tools==7.5.2
LOCK_FLAGS := --quiet --upgrade --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
	--no-emit-find-links --no-emit-index-url
lock:
	@test -x $(VENV)-lock/bin/pip-compile || { $(PYTHON) -m venv $(VENV)-lock && \
		$(VENV)-lock/bin/pip install --quiet $(PIP_TOOLS); }
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)-lock/bin/pip-compile $(LOCK_FLAGS) --extra test --output-file requirements/test.txt pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)-lock/bin/pip-compile $(LOCK_FLAGS) --constraint requirements/test.txt --output-file requirements/run.txt \
		pyproject.toml

install: $(STAMP) fonts xlsxlib

## make run: the bot on the embedded default (SQLite, no Redis, sandbox config, sandbox secrets);
## without WeCom credentials also the WeCom sandbox page: open the link with its token from the log (bot/sandbox)
run: $(STAMP) fonts xlsxlib
	BOT_CONFIG=$${BOT_CONFIG:-config/sandbox.yaml} LOG_FORMAT=$${LOG_FORMAT:-text} \
	HOTLINE_INGEST_SECRET=$${HOTLINE_INGEST_SECRET:-sandbox-secret} API_TOKEN=$${API_TOKEN:-sandbox-token} \
	PUBLIC_URL=$${PUBLIC_URL:-http://127.0.0.1:$${BOT_PORT:-8080}} \
	$(PY) run_bot.py serve

## make test: lint, types, the import contracts and the whole suite (SQLite, PostgreSQL, Redis, and the sandbox
## page in Debian's Chromium)
test: $(STAMP) fonts xlsxlib browser nginx promtool
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy bot config store notifiers handlers run_bot.py
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 -q

## make bench: the benchmarks, printed as one table; the callback benchmark's load comes from wrk (Debian's package,
## installed here when apt-get can; without it the benchmark falls back to its Python client and says so)
bench: $(STAMP) fonts xlsxlib
	@command -v wrk >/dev/null 2>&1 || $(call apt,wrk) || \
		echo "wrk is not installed (apt-get install wrk): the callback benchmark uses its Python client"
	$(PY) bench/run.py

## the browser tests drive Debian's Chromium (package chromium), installed here when apt-get can (as root); without it
## they are skipped (and fail in CI)
browser:
	@test -x $(CHROMIUM) || $(call apt,chromium) || \
		echo "Chromium is not installed (apt-get install chromium): the browser tests are skipped"

## the deployment recipe's test runs deploy/nginx/hotline-bot.conf with Debian's nginx (package nginx-light), installed
## here when apt-get can (as root) and left stopped: the test starts its own; without it the test is skipped (and fails
## in CI)
nginx:
	@test -x $(NGINX) || $(call apt,nginx-light,{ service nginx stop || true; } >/dev/null 2>&1;) || \
		echo "nginx is not installed (apt-get install nginx-light): the deployment recipe's test is skipped"

## the monitoring test checks deploy/prometheus/ (the alerts, their unit tests, the example config) and the dashboard's
## queries with Debian's promtool (package prometheus), installed here when apt-get can (as root) and the server it
## starts stopped: the test only runs promtool; without it those checks are skipped (and fail in CI)
promtool:
	@test -x $(PROMTOOL) || $(call apt,prometheus,{ service prometheus stop || true; } >/dev/null 2>&1;) || \
		echo "promtool is not installed (apt-get install prometheus): the monitoring checks are skipped"

## the report charts draw Chinese text in Debian's WenQuanYi Micro Hei (package fonts-wqy-microhei), installed here when
## apt-get can (as root); without it (and without REPORT_FONT) no chart is drawn, and the chart tests are skipped
## (and fail in CI)
fonts:
	@test -f $(CJK_FONT) || $(call apt,fonts-wqy-microhei) || \
		echo "WenQuanYi Micro Hei is not installed (apt-get install fonts-wqy-microhei): no report charts"

## the report workbooks are written by libxlsxwriter, XlsxWriter's C library (Debian's package libxlsxwriter4), when
## it is installed, here when apt-get can (as root); without it XlsxWriter writes them, slower, and the tests of the
## library's workbooks are skipped (and fail in CI)
xlsxlib:
	@$(PYTHON) -c 'import ctypes.util, sys; sys.exit(ctypes.util.find_library("$(XLSXLIB)") is None)' || \
		$(call apt,libxlsxwriter4) || echo "libxlsxwriter is not installed (apt-get install libxlsxwriter4): workbooks are written in Python"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy bot config store notifiers handlers run_bot.py

clean:
	rm -rf $(VENV) $(VENV)-lock .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench

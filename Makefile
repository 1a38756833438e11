# The reliability tier (tests/reliability): replicas under kill -9, rolling restarts, fuzzing, an SQS outage,
# LocalStack, security checks. RELIABILITY.md explains each scenario and the figures; these targets print them.
PYTHON ?= .venv/bin/python
REPORT_DIR ?= build
PYTEST_ARGS ?=

.PHONY: reliability reliability-full bench image-test sdk-v3-test

# Floor, naive loop and worker side by side, then 10,000 in flight (BENCHMARKS.md; about 20 minutes on 2 cores);
# then three replicas against SageMaker rate limits of 25, 5 and 100 Send* calls per second (about 8 minutes).
bench:
	mkdir -p benchmarks/results
	$(PYTHON) -m benchmarks.run 2>&1 | tee benchmarks/results/latest.log
	$(PYTHON) -m benchmarks.ratelimited 2>&1 | tee benchmarks/results/ratelimited.log

# The size CI runs (also part of the default `pytest` run); LocalStack scenarios run only if it is installed.
reliability:
	RELIABILITY_SCALE=ci RELIABILITY_REPORT=$(REPORT_DIR)/reliability-ci.json \
		$(PYTHON) -m pytest -m reliability tests/reliability $(PYTEST_ARGS)

# The size the issue asks for (>= 1,000 executions through killed replicas); installs LocalStack on first use.
# Then the delivery core's stateful property test (also in the default run, at 30 examples) at 1,000 examples, and
# the whole fault matrix (tests/faultmatrix; the default run takes a sample): every cell, about half a minute.
reliability-full:
	RELIABILITY_SCALE=full RELIABILITY_LOCALSTACK=install RELIABILITY_REPORT=$(REPORT_DIR)/reliability-full.json \
		$(PYTHON) -m pytest -m reliability tests/reliability $(PYTEST_ARGS)
	DELIVERY_PROPERTY_EXAMPLES=1000 $(PYTHON) -m pytest tests/unit/test_delivery_properties.py $(PYTEST_ARGS)
	FAULT_MATRIX=full $(PYTHON) -m pytest tests/faultmatrix $(PYTEST_ARGS)

# The container image built and run for real (tests/image): installs podman, buildah, runc and mmdebstrap if
# missing, builds a stand-in base from Debian's packages, builds both targets offline from a wheelhouse, runs them.
# Prints the image sizes, start-up time to /readyz and drain time (also in build/image-test.json).
image-test:
	scripts/install-image-tools
	CALLBACK_WORKER_IMAGE_TEST=1 $(PYTHON) -m pytest tests/image $(PYTEST_ARGS)

# The SageMaker Python SDK v3 tier (tests/integration/test_emulator_sdk_v3.py): v3 pipelines driven through the SDK
# against the emulator. It needs its own environment (SDK_V3_VENV, about 1.2 GB, 5-6 minutes the first time): the
# default one has v2 (tests/integration/test_emulator_sdk.py), and CI installs no v3. The tier also checks that the
# SDK still writes the committed fixtures of tests/fixtures/sdk_v3/; SDK_V3_REGENERATE=1 writes them again.
SDK_V3_VENV ?= build/sdk-v3-venv
SDK_V3_VERSION ?= 3.27.0
SDK_V3_REGENERATE ?= 0
sdk-v3-test:
	test -x $(SDK_V3_VENV)/bin/python || python3 -m venv $(SDK_V3_VENV)
	$(SDK_V3_VENV)/bin/pip install -q -e '.[demo]' 'sagemaker==$(SDK_V3_VERSION)' 'pytest>=9' 'pytest-asyncio>=1.2' \
		'pytest-timeout>=2.3'
	EMULATOR_SDK_V3=1 EMULATOR_SDK_V3_REGENERATE=$(SDK_V3_REGENERATE) \
		$(SDK_V3_VENV)/bin/python -m pytest tests/integration/test_emulator_sdk_v3.py $(PYTEST_ARGS)

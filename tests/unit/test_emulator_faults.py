"""Fault configuration from Python, flags and environment; the injector's decisions."""

from __future__ import annotations

import argparse
import re

import pytest

from callback_worker.emulator.cli import add_arguments, server_options
from callback_worker.emulator.errors import InternalFailureError, ThrottlingError
from callback_worker.emulator.faults import (
    FaultConfig,
    FaultInjector,
    OperationFaults,
    build_config,
    parse_operation_fault,
    split_specs,
)

SUCCESS = "SendPipelineExecutionStepSuccess"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_per_operation_specs_override_the_defaults_knob_by_knob() -> None:
    config = build_config(
        OperationFaults(throttle=0.1, latency=0.5),
        [f"{SUCCESS}:throttle=0.2,error-after=0.05", "StartPipelineExecution:error=0.9"],
        seed=4,
    )
    assert config.for_operation(SUCCESS) == OperationFaults(throttle=0.2, error_after=0.05, latency=0.5)
    assert config.for_operation("StartPipelineExecution") == OperationFaults(throttle=0.1, error=0.9, latency=0.5)
    assert config.for_operation("ListPipelines") == OperationFaults(throttle=0.1, latency=0.5)
    assert config.seed == 4
    assert config.active
    assert not FaultConfig().active


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("ListPipelines", "expected Operation:knob=value"),
        ("ListPipelines:", "expected Operation:knob=value"),
        ("ListPipelines:speed=1", "knob among"),
        ("ListPipelines:throttle", "knob among"),
        ("ListPipelines:throttle=lots", "'lots' is not a number"),
        ("ListModels:throttle=0.1", "no such operation"),
        ("ListPipelines:throttle=2", "between 0 and 1"),
        ("ListPipelines:latency=-1", "must not be negative"),
        ("ListPipelines:throttle=0.6,error=0.6", "add up to at most 1"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_operation_fault(spec, FaultConfig())


def test_python_configs_name_only_served_operations() -> None:
    with pytest.raises(ValueError, match="no such operation"):
        FaultConfig(operations={"ListModels": OperationFaults()})


def test_environment_specs_are_split_on_semicolons_and_spaces() -> None:
    assert split_specs(" A:throttle=1; B:error=0.5  C:latency=1 ;") == ["A:throttle=1", "B:error=0.5", "C:latency=1"]


def test_flags_win_over_the_environment_which_wins_over_defaults() -> None:
    environ = {
        "CALLBACK_WORKER_EMULATOR_THROTTLE_RATE": "0.3",
        "CALLBACK_WORKER_EMULATOR_LATENCY": "0.2",
        "CALLBACK_WORKER_EMULATOR_FAULTS": f"{SUCCESS}:error=0.5",
        "CALLBACK_WORKER_EMULATOR_SEED": "9",
        "CALLBACK_WORKER_EMULATOR_PORT": "4599",
        "AWS_REGION": "eu-central-1",
    }
    options = server_options(parse("--throttle-rate", "0.1", "--account-id", "000000000000"), environ)
    assert options["host"] == "127.0.0.1"
    assert options["port"] == 4599
    assert options["region"] == "eu-central-1"
    assert options["account"] == "000000000000"
    faults: FaultConfig = options["faults"]
    assert faults.default == OperationFaults(throttle=0.1, latency=0.2)
    assert faults.for_operation(SUCCESS) == OperationFaults(throttle=0.1, error=0.5, latency=0.2)
    assert faults.seed == 9
    flagged = server_options(
        parse("--fault", "ListPipelines:jitter=1", "--region", "ap-south-1", "--port", "0"), environ
    )
    assert flagged["region"] == "ap-south-1"
    assert flagged["port"] == 0
    assert flagged["faults"].for_operation(SUCCESS) == OperationFaults(throttle=0.3, latency=0.2)
    defaults = server_options(parse(), {})
    assert defaults["faults"] == FaultConfig()
    assert defaults["region"] == "us-east-1"
    assert defaults["max_running_executions"] is None
    assert server_options(parse("--max-running-executions", "3"), {})["max_running_executions"] == 3
    limited = {"CALLBACK_WORKER_EMULATOR_MAX_RUNNING_EXECUTIONS": "5", "AWS_DEFAULT_REGION": "sa-east-1"}
    assert server_options(parse(), limited)["max_running_executions"] == 5
    assert server_options(parse(), limited)["region"] == "sa-east-1"


def test_bad_numbers_in_the_environment_are_refused() -> None:
    with pytest.raises(ValueError, match="could not convert"):
        server_options(parse(), {"CALLBACK_WORKER_EMULATOR_ERROR_RATE": "often"})


async def test_the_injector_is_reproducible_and_counts_what_it_injects() -> None:
    config = FaultConfig(default=OperationFaults(throttle=0.3, error=0.2), seed=21)

    async def outcomes(injector: FaultInjector) -> list[str]:
        seen = []
        for _ in range(200):
            try:
                await injector.before("ListPipelines")
            except ThrottlingError:
                seen.append("throttle")
            except InternalFailureError:
                seen.append("error")
            else:
                seen.append("ok")
        return seen

    first = FaultInjector(config)
    results = await outcomes(first)
    assert results == await outcomes(FaultInjector(config))
    assert first.injected("ListPipelines", "throttle") == results.count("throttle")
    assert first.injected("ListPipelines", "error") == results.count("error")
    assert 30 <= results.count("throttle") <= 90
    assert 15 <= results.count("error") <= 65


def test_errors_after_the_change_are_opt_in() -> None:
    injector = FaultInjector(FaultConfig(default=OperationFaults(throttle=1.0)))
    injector.after(SUCCESS)
    injector.config = FaultConfig().with_operation(SUCCESS, error_after=1.0)
    with pytest.raises(InternalFailureError, match="after the change"):
        injector.after(SUCCESS)
    assert injector.injected(SUCCESS, "error_after") == 1

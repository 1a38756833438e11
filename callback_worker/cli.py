"""The ``callback-worker`` console script: ``run``, ``doctor``, ``handlers``, ``emulate``, ``demo`` and the operator
commands of :mod:`callback_worker.ops`. Settings errors and plugin errors become one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence

from callback_worker.config.errors import SettingsError
from callback_worker.config.settings import Settings, env_name, load_settings
from callback_worker.config.unknown import known_names, open_namespaces, unknown_settings
from callback_worker.dev import add_arguments as dev_arguments
from callback_worker.dev import run_dev
from callback_worker.ops import add_commands as add_operator_commands
from callback_worker.worker.errors import ConfigurationError, DuplicateHandlerName, PluginError
from callback_worker.worker.logs import configure_logging, get_logger
from callback_worker.worker.registry import HandlerSource, discover, load_each, load_handlers
from callback_worker.worker.signing import keyring_for

#: How to install the packages of ``demo`` and ``dev``: the ``demo`` extra, from the package index or a wheel file.
DEMO_EXTRA = (
    'the `demo` extra: pip install "sagemaker-callback-worker[demo]" (from a wheel file: '
    "pip install \"<wheel file>[demo]\"; from the source: pip install -e '.[demo]')"
)

#: Commands that need packages the daemon does without (its container image has neither): the packages, and what
#: to install instead. A command whose packages are missing says so in one line and exits 2.
OPTIONAL_COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "emulate": (
        ("callback_worker.emulator",),
        "the image's `emulator` target, or the project installed from its source",
    ),
    "demo": (
        ("callback_worker.emulator", "moto"),
        DEMO_EXTRA,
    ),
    "dev": (
        ("callback_worker.emulator", "moto"),
        DEMO_EXTRA,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    unavailable = missing_packages(arguments[0]) if arguments else []
    if unavailable:
        print(  # noqa: T201 - the one line an operator reads
            f"callback-worker {arguments[0]}: not available here: {', '.join(unavailable)} not installed; "
            f"use {OPTIONAL_COMMANDS[arguments[0]][1]}",
            file=sys.stderr,
        )
        return 2
    parser = build_parser(emulator_options=arguments[:1] == ["emulate"])
    args = parser.parse_args(arguments)
    try:
        code: int = args.command(args)
    except (SettingsError, PluginError) as exc:
        print(f"callback-worker: {exc}", file=sys.stderr)  # noqa: T201 - the one line an operator reads
        return 2
    return code


def missing_packages(command: str) -> list[str]:
    """The packages ``command`` needs that are not installed (none for the daemon's own commands)."""
    packages, _ = OPTIONAL_COMMANDS.get(command, ((), ""))
    return [package.rpartition(".")[2] for package in packages if importlib.util.find_spec(package) is None]


def build_parser(*, emulator_options: bool = True) -> argparse.ArgumentParser:
    """The console script's parser; ``emulator_options=False`` leaves the emulator (and its imports) out of other
    commands' processes, which then hold less memory."""
    parser = argparse.ArgumentParser(
        prog="callback-worker", description="Complete Amazon SageMaker Pipelines callback steps from an SQS queue."
    )
    # The installed distribution's version: its metadata, which the build takes from callback_worker.__version__
    # (a module never imports its own package).
    version = importlib.metadata.version("sagemaker-callback-worker")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the daemon (settings from CALLBACK_WORKER_* environment variables)",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.set_defaults(command=_run)
    doctor_help = "check settings, AWS access, the queue, SageMaker permissions and every handler; a line per finding"
    commands.add_parser("doctor", help=doctor_help).set_defaults(command=_doctor)
    listing = commands.add_parser("handlers", help="list the discovered handlers and where each comes from")
    listing.set_defaults(command=_handlers)
    emulate = commands.add_parser("emulate", help="serve the local SageMaker Pipelines emulator" + _absent("emulate"))
    if emulator_options:
        _add_emulator(emulate)
    demo_help = "run an end-to-end demo on loopback (no AWS account, no Docker)" + _absent("demo")
    demo = commands.add_parser("demo", help=demo_help)
    demo.add_argument("--verbose", action="store_true", help="also show the worker's own log lines")
    demo.set_defaults(command=_demo)
    dev_help = "run SQS, the SageMaker emulator and this worker on loopback until Ctrl-C" + _absent("dev")
    dev = commands.add_parser("dev", help=dev_help)
    dev_arguments(dev)
    dev.set_defaults(command=_dev)
    add_operator_commands(commands)
    return parser


def _absent(command: str) -> str:
    missing = missing_packages(command)
    return f" (not installed here: {', '.join(missing)})" if missing else ""


def _run(_: argparse.Namespace) -> int:
    # Until the event loop takes SIGTERM/SIGINT over, nothing is in flight: stopping then is a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    _check_allowlist(settings)
    keyring_for(settings)  # an unreadable, empty or short key file stops start-up here, in one line
    loaded = load_handlers(allow=settings.handlers)  # a handler outside the allowlist is not even imported
    handlers = {name: item.handler for name, item in loaded.items()}
    _check_default_handler(settings, sorted(handlers))
    _warn_unknown_settings()
    from callback_worker.worker.app import run_daemon  # noqa: PLC0415 - keeps `handlers` and `emulate` free of AWS imports

    asyncio.run(run_daemon(settings, handlers))
    return _exit_now(0)


def _exit_cleanly(signum: int, _: object) -> None:
    raise SystemExit(0)


def _check_default_handler(settings: Settings, available: list[str]) -> None:
    """Every handler the settings name must exist: a typo would otherwise fail every callback it routes."""
    named = [("handler", settings.handler)] + [("routes", handler) for handler in settings.routes.values()]
    for setting, handler in named:
        if handler is not None and handler not in available:
            raise ConfigurationError(
                f"invalid setting {env_name(setting)}: no handler named {handler!r}; "
                f"available: {', '.join(available) or 'none'}"
            )


def _warn_unknown_settings() -> None:
    """One warning per CALLBACK_WORKER_* variable that names no setting of the worker or of a loaded handler."""
    known = known_names()
    namespaces = open_namespaces((source.name for source in discover()), known)
    for unknown in unknown_settings(os.environ, known, namespaces):
        get_logger("callback_worker.cli").warning(unknown.message(), variable=unknown.name, closest=unknown.closest)


def _check_allowlist(settings: Settings) -> None:
    """Every name of ``CALLBACK_WORKER_HANDLERS`` must be an installed handler: a typo would otherwise fail every
    callback meant for it. Discovery imports nothing."""
    installed = sorted(source.name for source in discover())
    for name in settings.handlers or ():
        if name not in installed:
            raise ConfigurationError(
                f"invalid setting {env_name('handlers')}: no handler named {name!r}; "
                f"available: {', '.join(installed) or 'none'}"
            )


def settings_help() -> str:
    """``run --help``'s list of the worker's settings, each with its default; it names no file, which an installed
    wheel does not have."""
    lines = ["settings (environment variables, each with its default; the project's documentation explains each):"]
    for name, field in Settings.model_fields.items():
        default = "required" if field.is_required() else _shown(field.get_default(call_default_factory=True))
        lines.append(f"  {env_name(name):<36} {default}")
    lines.append(
        "AWS region, endpoints and credentials: the standard AWS environment (AWS_REGION, AWS_ENDPOINT_URL_SQS,"
    )
    lines.append("AWS_ENDPOINT_URL_SAGEMAKER, the credentials chain). Check them all with: callback-worker doctor")
    return "\n".join(lines)


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _doctor(_: argparse.Namespace) -> int:
    from callback_worker.doctor import run_doctor  # noqa: PLC0415 - keeps `handlers` and `emulate` free of AWS imports

    return run_doctor()


def _handlers(_: argparse.Namespace) -> int:
    """Every registered handler; a broken one with its error, a name claimed twice with both registrations marked
    DUPLICATE, and exit 2: one broken plugin hides none of the others."""
    results = load_each()
    width = max((len(source.name) for source, _ in results), default=4)
    broken = sorted({source.name for source, result in results if isinstance(result, PluginError)})
    for source, result in results:
        print(f"{source.name:<{width}}  {_listed(source, result)}")  # noqa: T201 - command output
    if broken:
        print(f"callback-worker: {len(broken)} handler(s) cannot be used: {', '.join(broken)}", file=sys.stderr)  # noqa: T201
        return 2
    return 0


def _listed(source: HandlerSource, result: object) -> str:
    if isinstance(result, DuplicateHandlerName):
        return f"DUPLICATE: {result}"
    return f"FAILED TO LOAD: {result}" if isinstance(result, PluginError) else source.describe()


def _add_emulator(parser: argparse.ArgumentParser) -> None:
    from callback_worker.emulator import cli as emulator_cli  # noqa: PLC0415 - the emulator is not part of the daemon

    emulator_cli.add_arguments(parser)
    parser.set_defaults(command=emulator_cli.run)


def _demo(args: argparse.Namespace) -> int:
    from callback_worker.demo import run_demo  # noqa: PLC0415 - needs the optional `demo` extra (moto)

    code: int = run_demo(args)
    return code


def _dev(args: argparse.Namespace) -> int:
    return _exit_now(run_dev(args))


def _exit_now(code: int) -> int:
    """Exit at once if sync handler threads are still running (they cannot be cancelled, only abandoned)."""
    if any(thread.name.startswith("callback-handler") and thread.is_alive() for thread in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())

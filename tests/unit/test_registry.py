"""worker/registry.py: entry-point discovery from real distributions on disk, loading, allow-list, routing."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callback_worker.worker.errors import PluginError
from callback_worker.worker.handler import CallbackContext, Handler
from callback_worker.worker.registry import HandlerSource, discover, load_handlers
from callback_worker.worker.router import AllowedHandlers, Router, restrict
from tests.plugin_factory import make_plugin, module_name

FUNCTION_PLUGIN = """
def hello(context):
    return {"greeting": "hello"}

NOT_CALLABLE = 42
"""

CLASS_PLUGIN = """
built = []

class Counter:
    def __init__(self):
        built.append(self)

    def __call__(self, context):
        return {"built": len(built)}

class NeedsArgument:
    def __init__(self, required):
        self.required = required

    def __call__(self, context):
        return {}

class NotCallableInstances:
    pass
"""

BROKEN_PLUGIN = """
raise RuntimeError("plugin import exploded")
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Make a plugin distribution with a unique name under ``tmp_path`` (on sys.path); returns the dist name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(handlers: dict[str, str], source: str, *, dist: str | None = None, version: str = "1.0") -> str:
        dist = dist or f"acme-plugin-{uuid.uuid4().hex[:8]}"
        make_plugin(tmp_path, dist, handlers, source, version=version)
        made.append(module_name(dist))
        return dist

    yield make
    for module in made:
        sys.modules.pop(module, None)


def by_name(sources: list[HandlerSource]) -> dict[str, HandlerSource]:
    return {source.name: source for source in sources}


def test_builtin_echo_is_discovered() -> None:
    echo = by_name(discover())["echo"]
    assert echo.value == "callback_worker.handlers.echo:EchoHandler"
    assert echo.distribution == "sagemaker-callback-worker"


def test_plugin_is_discovered_with_its_distribution(plugins: Callable[..., str]) -> None:
    dist = plugins({"hello": "hello"}, FUNCTION_PLUGIN, version="2.3.4")
    module = module_name(dist)
    source = by_name(discover())["hello"]
    assert source == HandlerSource("hello", f"{module}:hello", dist, "2.3.4")
    assert source.describe() == f"{module}:hello ({dist} 2.3.4)"


def test_discovery_imports_nothing(plugins: Callable[..., str]) -> None:
    dist = plugins({"broken": "anything"}, BROKEN_PLUGIN)
    assert "broken" in by_name(discover())
    assert module_name(dist) not in sys.modules


def test_discovery_is_sorted_by_name(plugins: Callable[..., str]) -> None:
    plugins({"zeta": "hello", "alpha": "hello", "mid": "hello"}, FUNCTION_PLUGIN)
    names = [source.name for source in discover()]
    assert names == sorted(names)
    assert {"alpha", "echo", "mid", "zeta"} <= set(names)


def test_function_plugin_loads(plugins: Callable[..., str]) -> None:
    dist = plugins({"hello": "hello"}, FUNCTION_PLUGIN, version="0.9")
    loaded = load_handlers()["hello"]
    assert loaded.handler is sys.modules[module_name(dist)].hello
    assert (loaded.source.distribution, loaded.source.version) == (dist, "0.9")
    assert isinstance(loaded.handler, Handler)


def test_class_entry_point_is_instantiated_once(plugins: Callable[..., str]) -> None:
    dist = plugins({"counter": "Counter"}, CLASS_PLUGIN)
    handler = load_handlers(allow=["counter"])["counter"].handler
    module = sys.modules[module_name(dist)]
    assert isinstance(handler, module.Counter)
    assert module.built == [handler]


def test_builtin_echo_loads_as_an_instance() -> None:
    from callback_worker.handlers.echo import EchoHandler  # noqa: PLC0415 - asserting on what the entry point built

    assert isinstance(load_handlers(allow=["echo"])["echo"].handler, EchoHandler)


def test_plugin_whose_import_raises(plugins: Callable[..., str]) -> None:
    dist = plugins({"broken": "anything"}, BROKEN_PLUGIN, version="3.1")
    with pytest.raises(PluginError) as caught:
        load_handlers()
    message = str(caught.value)
    assert "handler 'broken'" in message
    assert f"({dist} 3.1)" in message
    assert "RuntimeError: plugin import exploded" in message
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("NeedsArgument", "TypeError"),
        ("missing_attribute", "AttributeError"),
        ("no_such_module_xyz:thing", "ModuleNotFoundError"),
    ],
)
def test_plugin_that_cannot_be_built(plugins: Callable[..., str], target: str, problem: str) -> None:
    dist = plugins({"bad": target}, CLASS_PLUGIN)
    with pytest.raises(PluginError, match=f"handler 'bad' from .*{dist}.* failed to load: {problem}"):
        load_handlers()


@pytest.mark.parametrize(
    ("target", "kind"), [("NOT_CALLABLE", "int"), ("NotCallableInstances", "NotCallableInstances")]
)
def test_non_callable_handler(plugins: Callable[..., str], target: str, kind: str) -> None:
    source = FUNCTION_PLUGIN + CLASS_PLUGIN
    dist = plugins({"inert": target}, source)
    with pytest.raises(PluginError, match=f"handler 'inert' from .*{dist}.* is {kind}, not callable"):
        load_handlers()


def test_duplicate_names_across_distributions(plugins: Callable[..., str]) -> None:
    first = plugins({"shared": "hello"}, FUNCTION_PLUGIN)
    second = plugins({"shared": "hello"}, FUNCTION_PLUGIN)
    with pytest.raises(PluginError, match="'shared' is registered twice") as caught:
        discover()
    assert first in str(caught.value)
    assert second in str(caught.value)
    with pytest.raises(PluginError, match="registered twice"):
        load_handlers()


def test_plugin_cannot_take_the_builtin_name(plugins: Callable[..., str]) -> None:
    dist = plugins({"echo": "hello"}, FUNCTION_PLUGIN)
    with pytest.raises(PluginError, match="'echo' is registered twice") as caught:
        discover()
    assert "sagemaker-callback-worker" in str(caught.value)
    assert dist in str(caught.value)


def test_one_distribution_seen_twice_on_the_path_is_one_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same distribution reachable through two sys.path entries (an .egg-info next to an installed .dist-info
    # is the common case) declares the same thing twice; it is not a conflict.
    dist = f"twice-{uuid.uuid4().hex[:8]}"
    for root in (tmp_path / "a", tmp_path / "b"):
        root.mkdir()
        make_plugin(root, dist, {"twice": "hello"}, FUNCTION_PLUGIN)
        monkeypatch.syspath_prepend(str(root))
    assert [source.name for source in discover()].count("twice") == 1
    sys.modules.pop(module_name(dist), None)


def test_one_distribution_in_two_versions_the_first_on_the_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # importlib.metadata keeps one distribution per name (the first on sys.path), as imports do.
    dist = f"twice-{uuid.uuid4().hex[:8]}"
    for root, version in ((tmp_path / "a", "1.0"), (tmp_path / "b", "2.0")):
        root.mkdir()
        make_plugin(root, dist, {"twice": "hello"}, FUNCTION_PLUGIN, version=version)
        monkeypatch.syspath_prepend(str(root))  # "b" ends up first
    assert by_name(discover())["twice"].version == "2.0"
    sys.modules.pop(module_name(dist), None)


def test_allow_list_selects_handlers(plugins: Callable[..., str]) -> None:
    plugins({"hello": "hello", "other": "hello"}, FUNCTION_PLUGIN)
    assert [source.name for source in discover(allow=["hello"])] == ["hello"]
    assert set(load_handlers(allow={"hello", "echo"})) == {"hello", "echo"}


def test_allow_list_skips_broken_and_conflicting_plugins(plugins: Callable[..., str]) -> None:
    broken = plugins({"broken": "anything"}, BROKEN_PLUGIN)
    plugins({"shared": "hello"}, FUNCTION_PLUGIN)
    plugins({"shared": "hello"}, FUNCTION_PLUGIN)
    assert set(load_handlers(allow=["echo"])) == {"echo"}
    assert module_name(broken) not in sys.modules


def test_empty_allow_list_loads_nothing() -> None:
    assert load_handlers(allow=[]) == {}


# --- Router -----------------------------------------------------------------------------------------------------


def first(context: CallbackContext) -> dict[str, str]:
    return {"by": "first"}


def second(context: CallbackContext) -> dict[str, str]:
    return {"by": "second"}


HANDLERS: dict[str, Handler] = {"first": first, "second": second}


def test_router_uses_the_default() -> None:
    router = Router(HANDLERS, default="first", argument="handler")
    assert router.route({"x": 1}) == ("first", first)


def test_router_argument_overrides_the_default() -> None:
    router = Router(HANDLERS, default="first", argument="handler")
    assert router.route({"handler": "second"}) == ("second", second)


def test_router_uses_the_configured_argument_name() -> None:
    router = Router(HANDLERS, default="first", argument="route")
    assert router.route({"handler": "second"}) == ("first", first)
    assert router.route({"route": "second"}) == ("second", second)


def test_router_unknown_name() -> None:
    router = Router(HANDLERS, default="first", argument="handler")
    assert router.route({"handler": "third"}) == ("third", None)
    assert router.unknown_reason("third") == "no handler named 'third'; available: first, second"


def test_router_non_string_argument_is_looked_up_as_text() -> None:
    router = Router({"5": first}, default=None, argument="handler")
    assert router.route({"handler": 5}) == ("5", first)


def test_router_without_default_or_argument() -> None:
    router = Router(HANDLERS, default=None, argument="handler")
    assert router.route({}) == ("", None)
    reason = router.unknown_reason("")
    assert "no 'handler' argument" in reason
    assert "no default handler" in reason
    assert reason.endswith("available: first, second")


def test_router_with_no_handlers() -> None:
    router = Router({}, default="first", argument="handler")
    assert router.route({}) == ("first", None)
    assert router.unknown_reason("first").endswith("available: none")


def test_allowed_handlers_hold_only_the_allowed_ones() -> None:
    allowed = AllowedHandlers(HANDLERS, ["second", "absent"])
    assert dict(allowed) == {"second": second}
    assert (len(allowed), "first" in allowed, allowed.allowed) == (1, False, frozenset({"second", "absent"}))
    assert restrict(HANDLERS, None) is HANDLERS


def test_router_refuses_a_name_outside_the_allowlist_even_by_default_or_route() -> None:
    router = Router(restrict(HANDLERS, ["second"]), default="first", argument="handler", routes={"p/*": "first"})
    assert router.allowed == frozenset({"second"})
    assert router.route({}, "p") == ("first", None)
    assert router.route({}) == ("first", None)
    assert router.route({"handler": "second"}) == ("second", second)
    assert router.unknown_reason("first") == (
        "handler 'first' is not allowed on this worker (CALLBACK_WORKER_HANDLERS); allowed: second"
    )


def test_router_with_an_explicit_allowlist_offers_only_allowed_names() -> None:
    router = Router(HANDLERS, default=None, argument="handler", allowed=["first"])
    assert router.route({"handler": "second"}) == ("second", None)
    assert router.unknown_reason("second").endswith("allowed: first")

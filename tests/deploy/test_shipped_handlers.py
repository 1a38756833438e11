"""The shipped Kubernetes ConfigMap and ECS task definition choose no handler for the user.

Before: both set ``CALLBACK_WORKER_HANDLER=echo`` and no allowlist, so deploying them as shipped answered every step
that named no handler with an instant Success, and any message could name ``echo``. Now they ship an allowlist without
``echo`` and no default handler; the ConfigMap's comments (and deploy/README.md for the task definition, whose JSON
has no comments) say how to choose one.
"""

from __future__ import annotations

import pytest

from tests.deploy.manifests import DEPLOY, KUBERNETES, ecs_env, kubernetes_env
from tests.deploy.test_settings import settings_of

SHIPPED = {"kubernetes": kubernetes_env, "ecs": ecs_env}


@pytest.mark.parametrize("deployment", SHIPPED)
def test_an_allowlist_without_echo_and_no_default_handler(deployment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = SHIPPED[deployment]()
    assert "CALLBACK_WORKER_HANDLER" not in environment, "the user chooses a default handler, if any"
    settings = settings_of(deployment, monkeypatch)
    assert settings.handler is None
    assert settings.handlers is not None, "an allowlist is shipped"
    assert "echo" not in settings.handlers


def test_the_configmap_and_the_readme_say_how_to_choose() -> None:
    comments = [line.strip() for line in (KUBERNETES / "configmap.yaml").read_text().splitlines() if "#" in line]
    text = " ".join(comments)
    assert "callback-worker handlers" in text
    assert "CALLBACK_WORKER_HANDLER: " in text, "a commented example of a default handler"
    readme = " ".join((DEPLOY / "README.md").read_text().split())
    assert 'and add `{"name": "CALLBACK_WORKER_HANDLER", "value": "..."}`' in readme


def test_the_iam_table_says_verification_needs_the_listing() -> None:
    readme = " ".join((DEPLOY / "README.md").read_text().split())
    assert "the daemon itself does not call them" not in readme
    assert (
        "| `sagemaker:ListPipelineExecutionSteps` | same | token verification (`CALLBACK_WORKER_VERIFY_TOKENS`, on by "
        "default)" in readme
    )

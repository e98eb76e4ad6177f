from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from marketplace.catalog.models import Model, Version
from marketplace.catalog.services import version_publish_local
from tests.factories import EXAMPLES, FIXTURES, UserFactory, cpu

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():  # type: ignore[no-untyped-def]
    cpu()
    return UserFactory(username="dana")


def test_publish_creates_the_model_and_a_version(owner, capsys) -> None:  # type: ignore[no-untyped-def]
    call_command("publish_local", str(EXAMPLES / "hello"), "--owner", "dana", "--name", "greeter")
    version_id = capsys.readouterr().out.strip()
    version = Version.objects.get(pk=version_id)
    assert len(version_id) == 64 and int(version_id, 16) >= 0
    assert version.model.full_name == "dana/greeter"
    assert version.source_path == str((EXAMPLES / "hello").resolve())
    assert (
        version.openapi_schema["components"]["schemas"]["Input"]["properties"]["text"]["default"]
        == "world"
    )
    assert version.cog_config["predict"] == "predict.py:Predictor"
    assert version.cog_version
    assert "hello" in version.model.readme.lower()


def test_publishing_unchanged_code_is_idempotent_and_a_change_makes_a_new_version(
    owner, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    project = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", project)
    call_command("publish_local", str(project), "--owner", "dana", "--name", "greeter")
    call_command("publish_local", str(project), "--owner", "dana", "--name", "greeter")
    assert Version.objects.filter(model__name="greeter").count() == 1
    predict = project / "predict.py"
    predict.write_text(predict.read_text().replace('"hello "', '"hi "'))
    call_command("publish_local", str(project), "--owner", "dana", "--name", "greeter")
    assert Version.objects.filter(model__name="greeter").count() == 2
    assert Model.objects.filter(name="greeter").count() == 1


def test_schema_is_generated_and_written_when_missing(owner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", project)
    shutil.rmtree(project / ".cog")
    call_command("publish_local", str(project), "--owner", "dana", "--name", "fresh")
    assert (project / ".cog" / "openapi_schema.json").is_file()
    version = Version.objects.get(model__name="fresh")
    assert "text" in version.openapi_schema["components"]["schemas"]["Input"]["properties"]


def test_a_directory_without_cog_yaml_is_refused(owner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match=r"cog\.yaml"):
        call_command("publish_local", str(tmp_path), "--owner", "dana", "--name", "nothing")
    assert not Model.objects.filter(name="nothing").exists()


def test_a_predictor_that_does_not_import_is_refused_with_the_error(owner) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match=r"ModuleNotFoundError|No module named"):
        call_command(
            "publish_local",
            str(FIXTURES / "cog" / "broken_import"),
            "--owner",
            "dana",
            "--name",
            "broken",
        )
    assert not Model.objects.filter(name="broken").exists()


def test_unknown_owner_is_refused() -> None:
    with pytest.raises(CommandError, match="No account"):
        call_command("publish_local", str(EXAMPLES / "hello"), "--owner", "ghost", "--name", "x")


def test_seed_demo_publishes_every_example_and_is_idempotent(capsys, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = True  # pytest-django runs tests with DEBUG off
    cpu()
    call_command("seed_demo")
    first_token = capsys.readouterr().out.strip()
    call_command("seed_demo")
    second_token = capsys.readouterr().out.strip()
    assert first_token == second_token and first_token.startswith("mkt_")
    names = set(Model.objects.filter(owner__username="demo").values_list("name", flat=True))
    assert {"hello", "image-filter", "text-stream", "input-types", "slow-progress"} <= names
    assert Version.objects.filter(model__owner__username="demo").count() == len(names)


def test_seed_demo_refuses_to_run_without_debug(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")


def test_the_description_is_the_whole_first_paragraph_of_the_readme(owner) -> None:  # type: ignore[no-untyped-def]
    version, _ = version_publish_local(
        path=EXAMPLES / "text-stream", owner=owner.account, name="ts"
    )
    description = version.model.description
    assert description.startswith('A tiny "language model"')
    assert description.endswith(".")  # not cut where the README's line wraps
    assert "\n" not in description and len(description) <= 500

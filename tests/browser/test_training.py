"""Training in a real browser: the demo's Train tab (a file upload, a slider, a new destination),
the live training page (progress, logs, the link to the new version), the trained version
writing in the uploaded text's voice, and the training in the history."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from marketplace.catalog.models import Model, Version
from marketplace.predictions.models import Prediction
from tests.browser.conftest import GUARDED, shot
from tests.browser.test_csp import WATCH
from tests.browser.test_site import sign_up
from tests.factories import EXAMPLES, UserFactory, publish

pytestmark = pytest.mark.slow

TIMEOUT = 90_000  # ms: the first training boots a train-mode Cog server
SAMPLE = EXAMPLES / "text-train" / "samples" / "astronomer.txt"


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_train_the_demo_from_its_train_tab_and_run_the_new_version(
    page: Any, start_web: Any, start_agent: Any, transactional_db: None, tmp_path: Path
) -> None:
    base = publish(UserFactory(username="demo"), "text-train", "text-train")
    web = start_web(**GUARDED)
    start_agent(idle_timeout=10, max_instances=3, PUBLIC_URL=web.url, **GUARDED)
    page.context.add_init_script(WATCH)  # collects Content-Security-Policy violations
    sign_up(page, web.url, "erin")

    page.goto(f"{web.url}/demo/text-train")
    page.get_by_role("link", name="Train", exact=True).click()
    expect(page).to_have_url(f"{web.url}/demo/text-train/train")
    expect(page.get_by_role("heading", name="Train a new version")).to_be_visible()
    page.get_by_label(re.compile(r"^Text File")).set_input_files(str(SAMPLE))
    page.get_by_role("slider", name="Order slider").fill("2")
    destination = page.get_by_role("combobox", name="Model the new version goes to")
    expect(destination).to_have_value("")  # a new model
    page.get_by_role("textbox", name="Name of the new model").fill("astronomer")
    shot(page, "train-form")
    assert page.evaluate("window.__violations") == []
    page.get_by_role("button", name="Start training").click()

    expect(page).to_have_url(re.compile(r"/p/[a-z0-9]+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Training")
    expect(page.locator("#status")).to_have_text("succeeded", timeout=TIMEOUT)
    expect(page.locator("#logs")).to_contain_text("learned")
    expect(page.locator("#progress-text")).to_contain_text("10/10")
    link = page.locator("#trained-version a")
    expect(link).to_contain_text("erin/astronomer:")
    shot(page, "training-succeeded")
    assert page.evaluate("window.__violations") == []
    training = Prediction.objects.get(kind="training")
    trained = Version.objects.get(training=training)
    assert trained.trained_from_id == base.pk
    assert Model.objects.get(name="astronomer").visibility == "private"

    # The new version: its page says where it came from; it writes like the astronomer.
    link.click()
    expect(page).to_have_url(f"{web.url}/erin/astronomer?version={trained.pk}")
    expect(page.locator(".notice")).to_contain_text("This version was trained from demo/text-train")
    page.get_by_role("spinbutton", name="Seed").fill("5")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#status")).to_have_text("succeeded", timeout=TIMEOUT)
    written = page.locator("#output").inner_text()
    shot(page, "trained-version-output")
    only_in_sample = words(SAMPLE.read_text()) - words(
        (EXAMPLES / "text-train" / "corpus.txt").read_text()
    )
    assert words(written) & only_in_sample, written

    # Training again: the picker offers the new model; picking it hides the new model's fields.
    page.goto(f"{web.url}/demo/text-train/train")
    expect(page.get_by_role("textbox", name="Name of the new model")).to_be_visible()
    page.get_by_role("combobox", name="Model the new version goes to").select_option(
        "erin/astronomer"
    )
    expect(page.get_by_role("textbox", name="Name of the new model")).to_be_hidden()

    # The versions tab shows the training's inputs; the history lists the training.
    page.goto(f"{web.url}/erin/astronomer/versions")
    expect(page.get_by_label("Training inputs")).to_contain_text("astronomer.txt")
    page.goto(f"{web.url}/account/predictions?kind=training")
    expect(page.get_by_role("link", name=training.pk)).to_be_visible()
    shot(page, "history-trainings")

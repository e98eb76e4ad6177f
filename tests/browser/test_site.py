"""The site in a real browser: sign up, make a token, run every demo model from its generated
form and watch the prediction live; widgets by role and label; inline errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from marketplace.accounts.models import ApiToken, User
from marketplace.predictions.models import Prediction
from tests.browser.conftest import GUARDED, shot
from tests.factories import UserFactory, publish

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 90_000  # ms: the first run of a model boots its Cog server


@pytest.fixture
def demo(transactional_db: None) -> dict[str, Any]:
    owner = UserFactory(username="demo")
    return {
        name: publish(owner, name, name)
        for name in (
            "hello",
            "hello-concurrent",
            "image-filter",
            "input-types",
            "slow-progress",
            "text-stream",
        )
    }


def sign_up(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/account/signup")
    shot(page, "signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password:", exact=True).fill("a-Long-pass-123")
    page.get_by_label("Password confirmation").fill("a-Long-pass-123")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{base}/account/tokens")


def run_and_wait(page: Any, name: str) -> str:
    """Submit the playground; wait for the live view to reach a terminal status."""
    page.get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"/p/[a-z0-9]+$"))
    expect(page.locator("#status")).to_have_text(
        re.compile("succeeded|failed|canceled"), timeout=RUN_TIMEOUT
    )
    shot(page, f"prediction-{name}")
    return page.url


def test_sign_up_token_and_run_every_demo_model_live(
    page: Any, start_web: Any, start_agent: Any, demo: dict[str, Any], tmp_path: Path
) -> None:
    web = start_web(**GUARDED)
    # Output URLs are built by the agent: it must know the address of the site too.
    start_agent(idle_timeout=4, max_instances=3, PUBLIC_URL=web.url, **GUARDED)
    base = web.url

    page.goto(base)
    expect(page.get_by_role("heading", name="Explore models")).to_be_visible()
    expect(
        page.get_by_role("region", name="Popular").get_by_role("link", name="demo/image-filter")
    ).to_be_visible()
    shot(page, "explore")

    sign_up(page, base, "carol")
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    raw = page.get_by_label("Token").input_value()
    assert ApiToken.objects.authenticate(raw).user.username == "carol"
    shot(page, "tokens")
    page.reload()
    expect(page.get_by_label("Token")).to_have_count(0)  # shown once
    expect(page.get_by_role("cell", name="laptop", exact=True)).to_be_visible()

    # image-filter: upload an image, move the slider, pick an enum.
    image = tmp_path / "gradient.png"
    Image.linear_gradient("L").convert("RGB").save(image)
    page.goto(f"{base}/demo/image-filter")
    shot(page, "model-image-filter")
    page.get_by_label(re.compile(r"^Image")).set_input_files(str(image))
    expect(page.locator(".preview-slot img")).to_be_visible()
    page.get_by_role("slider", name="Size slider").fill("128")
    expect(page.get_by_role("spinbutton", name="Size")).to_have_value("128")
    page.get_by_role("combobox", name="Filter").select_option("grayscale")
    run_and_wait(page, "image-filter")
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#output img")).to_be_visible()
    expect(page.locator("#logs")).to_contain_text("filtering 128x128 with 'grayscale'")
    image_out = page.locator("#output img").get_attribute("src")
    assert page.evaluate(
        "async (u) => (await fetch(u)).headers.get('content-type')", image_out
    ).startswith("image/png")

    # input-types: toggle a bool, pick an enum, move a slider, a secret and a list item.
    page.goto(f"{base}/demo/input-types")
    page.get_by_text("Show advanced inputs").click()
    page.get_by_role("switch", name="Shout").check()
    page.get_by_role("combobox", name="Color").select_option("blue")
    page.get_by_role("slider", name="Count slider").fill("9")
    page.get_by_label("Api Token").fill("hunter2-secret")
    page.get_by_role("textbox", name="Name").fill("Ada")
    page.get_by_role("button", name="Add item").click()
    page.get_by_role("textbox", name="Tags new item").last.fill("gamma")
    shot(page, "model-input-types-filled")
    permalink = run_and_wait(page, "input-types")
    output = page.locator("#output")
    expect(output).to_contain_text('"greeting": "HELLO ADA"')
    expect(output).to_contain_text('"count": 9')
    expect(output).to_contain_text('"color": "blue"')
    expect(output).to_contain_text('"gamma"')
    expect(output).to_contain_text("14 chars")  # the model saw the secret...
    expect(page.locator("body")).not_to_contain_text("hunter2")  # ...the page never shows it
    prediction = Prediction.objects.get(model__name="input-types")
    assert prediction.input["api_token"] == "**********" and prediction.source == "web"

    # The permalink, opened afresh, shows the finished prediction; "Tweak it" refills the form.
    page.goto(permalink)
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#output")).to_contain_text("HELLO ADA")
    page.get_by_role("link", name="Tweak it").click()
    expect(page.get_by_role("combobox", name="Color")).to_have_value("blue")
    expect(page.get_by_role("switch", name="Shout")).to_be_checked()
    expect(page.get_by_label("Api Token")).to_have_value("")

    # text-stream: an iterator output that streams in while the prediction runs.
    page.goto(f"{base}/demo/text-stream")
    page.get_by_role("slider", name="Max Tokens slider").fill("100")
    page.get_by_role("button", name="Run").click()
    # A function, not an expression string: Playwright evaluates strings with eval, which the
    # site's CSP refuses.
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'processing'"
        " && (document.querySelector('#output pre') || {textContent: ''})"
        ".textContent.split(' ').length > 5",
        timeout=RUN_TIMEOUT,
    )
    shot(page, "prediction-text-stream-streaming")
    expect(page.locator("#status")).to_have_text("succeeded", timeout=RUN_TIMEOUT)
    expect(page.locator("#logs")).to_contain_text("Using seed")
    assert len(page.locator("#output pre").inner_text().split()) >= 100

    # hello: the defaults only.
    page.goto(f"{base}/demo/hello")
    run_and_wait(page, "hello")
    expect(page.locator("#output")).to_contain_text("hello world")

    # hello-concurrent: a text input.
    page.goto(f"{base}/demo/hello-concurrent")
    page.get_by_role("textbox", name="Text").fill("concurrency")
    run_and_wait(page, "hello-concurrent")
    expect(page.locator("#output")).to_contain_text("hello concurrency")

    # slow-progress: progress bars from tqdm lines, live; then cancel it.
    page.goto(f"{base}/demo/slow-progress")
    page.get_by_role("spinbutton", name="Steps").fill("60")
    page.get_by_role("spinbutton", name="Step Seconds").fill("0.5")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#status")).to_have_text("processing", timeout=RUN_TIMEOUT)
    expect(page.locator("#progress-text")).to_contain_text(re.compile(r"^[1-9]\d*/60"))
    first = page.locator("#progress-bar").evaluate("p => p.value")
    expect(page.locator("#progress-text")).not_to_contain_text(re.compile(r"^[0-4]/60"))
    assert page.locator("#progress-bar").evaluate("p => p.value") > first
    shot(page, "prediction-slow-progress-running")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#status")).to_have_text("canceled", timeout=30_000)
    shot(page, "prediction-slow-progress-canceled")
    assert Prediction.objects.get(model__name="slow-progress").status == "canceled"

    page.goto(f"{base}/account/predictions?status=succeeded")
    expect(page.get_by_role("row")).to_have_count(1 + 5)
    shot(page, "history")


def test_widgets_by_role_and_inline_errors_create_nothing(
    page: Any, start_web: Any, demo: dict[str, Any]
) -> None:
    web = start_web(**GUARDED)
    user = User.objects.create_user("dora", "dora@example.com", "a-Long-pass-123")
    page.goto(f"{web.url}/account/login?next=/demo/input-types")
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill("a-Long-pass-123")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{web.url}/demo/input-types")
    page.get_by_text("Show advanced inputs").click()

    expect(page.get_by_role("slider", name="Count slider")).to_be_visible()
    expect(page.get_by_role("spinbutton", name="Count")).to_have_value("3")
    expect(page.get_by_role("slider", name="Temperature slider")).to_be_visible()
    expect(page.get_by_role("spinbutton", name="Temperature")).to_have_value("0.7")
    expect(page.get_by_role("switch", name="Shout")).not_to_be_checked()
    expect(page.get_by_role("combobox", name="Color")).to_have_value("green")
    expect(page.get_by_role("combobox", name="Level")).to_have_value("2")
    secret = page.get_by_label("Api Token")
    expect(secret).to_have_attribute("type", "password")
    expect(page.get_by_role("group", name="Tags")).to_be_visible()
    expect(page.get_by_role("textbox", name="Tags item 1")).to_have_value("alpha")
    expect(page.get_by_role("textbox", name="Note")).to_have_value("")
    expect(page.get_by_role("textbox", name="Name")).to_have_attribute("maxlength", "20")
    expect(page.get_by_role("textbox", name="Code")).to_have_value("AB-12")
    expect(page.get_by_role("switch", name="Legacy Mode")).to_be_visible()
    expect(page.get_by_text("deprecated", exact=True)).to_be_visible()
    # What a run costs, before running it (CPU time, at most the prediction timeout).
    expect(page.locator("#cost")).to_contain_text(re.compile(r"per second on CPU · at most \$"))
    shot(page, "model-input-types")

    # The browser checks the schema's constraints first...
    page.get_by_role("spinbutton", name="Count").fill("50")
    page.get_by_role("textbox", name="Code").fill("nope")
    page.get_by_role("button", name="Run").click()
    expect(page.locator('[data-field="count"] .error')).to_be_visible()
    expect(page.locator('[data-field="code"] .error')).to_be_visible()
    expect(page).to_have_url(f"{web.url}/demo/input-types")
    # ...and the server's errors appear next to each field when the browser's are bypassed.
    page.evaluate(
        "document.querySelectorAll('#playground input').forEach(i => {"
        " i.removeAttribute('max'); i.removeAttribute('pattern'); })"
    )
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#input-count-error")).to_contain_text("greater than the maximum of 10")
    expect(page.locator("#input-code-error")).to_be_visible()
    expect(page.get_by_role("spinbutton", name="Count")).to_have_value("50")
    shot(page, "model-input-types-errors")
    assert not Prediction.objects.filter(created_by=user).exists()

    # Usable on a phone: the form fits the screen without sideways scrolling.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{web.url}/demo/image-filter")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "model-image-filter-phone")
    page.goto(f"{web.url}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "explore-phone")

"""Server-rendered pages: who sees what, the generated playground, running, owners' pages."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from marketplace import storage
from marketplace.accounts.models import ApiToken
from marketplace.catalog.models import Collection, Model
from marketplace.files.models import StoredFile
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_create, prediction_finish
from tests.factories import private, publish

pytestmark = pytest.mark.django_db


def test_explore_lists_public_models_and_hides_private_ones(client: Client, user: Any) -> None:
    publish(user, "hello", "hello")
    private(publish(user, "hello-concurrent", "secret-hello"))
    Model.objects.filter(name="hello").update(featured=True)
    html = client.get("/").content.decode()
    assert "alice/hello" in html
    assert "secret-hello" not in html
    assert "Featured" in html


def test_search_filters_by_query_owner_hardware_and_pricing(client: Client, user: Any) -> None:
    publish(user, "hello", "hello")
    version = publish(user, "slow-progress", "slow")
    version.unit_price = "0.01"
    version.save()
    assert "alice/slow" in client.get("/search?q=slow").content.decode()
    assert "alice/hello" not in client.get("/search?q=slow").content.decode()
    per_prediction = client.get("/search?pricing=prediction").content.decode()
    assert "alice/slow" in per_prediction and "alice/hello" not in per_prediction
    per_second = client.get("/search?pricing=second").content.decode()
    assert "alice/hello" in per_second and "alice/slow" not in per_second
    assert "0 models" in client.get("/search?owner=nobody").content.decode()
    assert "2 models" in client.get("/search?owner=alice&hardware=cpu").content.decode()


def test_collection_page_lists_visible_members(client: Client, user: Any) -> None:
    hello = publish(user, "hello", "hello").model
    hidden = private(publish(user, "hello-concurrent", "hidden")).model
    collection = Collection.objects.create(slug="greeters", name="Greeters")
    collection.members.add(hello, hidden)
    assert "Greeters" in client.get("/collections").content.decode()
    html = client.get("/collections/greeters").content.decode()
    assert "alice/hello" in html and "alice/hidden" not in html


def test_private_model_is_404_to_outsiders_and_visible_to_owner(
    alice_client: Client, mallory_client: Client, client: Client, user: Any
) -> None:
    private(publish(user, "hello", "hello"))
    for path in ("", "/api", "/versions", "/examples"):
        assert mallory_client.get(f"/alice/hello{path}").status_code == 404
        assert client.get(f"/alice/hello{path}").status_code == 404
        assert alice_client.get(f"/alice/hello{path}").status_code == 200
    assert mallory_client.get("/alice/hello/edit").status_code == 404
    assert mallory_client.get("/alice/hello/push").status_code == 404


def test_readme_is_sanitized(alice_client: Client, user: Any) -> None:
    model = publish(user, "hello", "hello").model
    model.readme = (
        "# Title\n\n<script>alert(1)</script>\n\n<a href='javascript:x()' onclick='y()'>x</a>"
    )
    model.save()
    html = alice_client.get("/alice/hello").content.decode()
    assert "<h1>Title</h1>" in html
    assert "<script>alert" not in html
    assert "javascript:" not in html and "onclick" not in html


def test_playground_renders_a_widget_per_input(alice_client: Client, input_types: Any) -> None:
    html = alice_client.get("/alice/input-types").content.decode()
    assert 'type="range"' in html and 'id="input-count"' in html
    assert 'role="switch" id="input-shout"' in html
    assert '<select id="input-color"' in html
    assert '<option value="green" selected>' in html
    assert 'type="password" id="input-api_token"' in html
    assert 'name="tags" value="alpha"' in html
    assert 'pattern="^[A-Z]{2}-\\d{2}$"' in html
    assert "Show advanced inputs" in html


def test_anonymous_visitor_is_asked_to_log_in_to_run(client: Client, input_types: Any) -> None:
    html = client.get("/alice/input-types").content.decode()
    assert "Log in to run this model" in html
    response = client.post("/alice/input-types/run", {"version": input_types.pk})
    assert response.status_code == 302 and "/account/login" in response["Location"]
    assert not Prediction.objects.exists()


def test_invalid_input_shows_errors_inline_and_creates_nothing(
    alice_client: Client, input_types: Any
) -> None:
    response = alice_client.post(
        "/alice/input-types/run",
        {
            "version": input_types.pk,
            "count": "50",
            "code": "nope",
            "color": "red",
            "api_token": "s3cret-value",
        },
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="input-count-error"' in html and "50 is greater than the maximum of 10" in html
    assert 'id="input-code-error"' in html
    assert 'aria-describedby="input-count-help input-count-error" aria-invalid="true"' in html
    # What was typed comes back, except the secret.
    assert 'value="50"' in html and '<option value="red" selected>' in html
    assert "s3cret-value" not in html
    assert not Prediction.objects.exists()


def test_unparseable_number_is_an_inline_error(alice_client: Client, input_types: Any) -> None:
    response = alice_client.post(
        "/alice/input-types/run", {"version": input_types.pk, "temperature": "warm"}
    )
    assert response.status_code == 422
    assert "Enter a number." in response.content.decode()
    assert not Prediction.objects.exists()


def test_valid_input_creates_a_web_prediction_with_the_secret_redacted(
    alice_client: Client, input_types: Any
) -> None:
    response = alice_client.post(
        "/alice/input-types/run",
        {
            "version": input_types.pk,
            "count": "4",
            "shout": "on",
            "color": "blue",
            "level": "3",
            "api_token": "s3cret-value",
            "tags": ["x", "y", ""],
        },
    )
    prediction = Prediction.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/p/{prediction.pk}"
    assert prediction.source == "web"
    assert prediction.input == {
        "count": 4,
        "shout": True,
        "color": "blue",
        "level": 3,
        "api_token": "**********",
        "tags": ["x", "y"],
    }
    page = alice_client.get(f"/p/{prediction.pk}").content.decode()
    assert "s3cret" not in page and "redacted" in page and "Cancel" in page
    # Tweak it refills the form from the prediction, but never the secret.
    tweak = alice_client.get(f"/alice/input-types?tweak={prediction.pk}").content.decode()
    assert '<option value="blue" selected>' in tweak and 'value="4"' in tweak
    assert "**********" not in tweak


def test_file_input_upload_is_stored_and_passed_as_a_url(
    alice_client: Client, user: Any, settings: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    version = publish(user, "image-filter", "image-filter")
    png = SimpleUploadedFile("cat.png", b"\x89PNG fake", content_type="image/png")
    response = alice_client.post(
        "/alice/image-filter/run", {"version": version.pk, "image": png, "filter": "blur"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    url = Prediction.objects.get().input["image"]
    assert url.startswith(f"{settings.PUBLIC_URL}/files/uploads/") and url.endswith("/cat.png")
    name = storage.name_of(url)
    assert name is not None
    # Owned by the account that ran it (a row, not the URL's shape, says so).
    assert StoredFile.objects.get(name=name).account == user.account
    served = alice_client.get(storage.signed_url(name).removeprefix(settings.PUBLIC_URL))
    assert served.status_code == 200 and b"".join(served.streaming_content) == b"\x89PNG fake"


def test_oversized_upload_is_refused_and_stores_nothing(
    alice_client: Client, user: Any, settings: Any, tmp_path: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.WEB_UPLOAD_MAX_BYTES = 10
    settings.MEDIA_ROOT = str(tmp_path)
    version = publish(user, "image-filter", "image-filter")
    big = SimpleUploadedFile("big.png", b"x" * 11, content_type="image/png")
    response = alice_client.post("/alice/image-filter/run", {"version": version.pk, "image": big})
    assert response.status_code == 422
    assert "larger than the" in response.content.decode()
    assert not Prediction.objects.exists()
    assert not (tmp_path / "uploads").exists()


def test_missing_required_file_is_an_inline_error(alice_client: Client, user: Any) -> None:
    version = publish(user, "image-filter", "image-filter")
    response = alice_client.post("/alice/image-filter/run", {"version": version.pk})
    assert response.status_code == 422
    assert 'id="input-image-error"' in response.content.decode()


def test_predictions_are_private_to_their_account_unless_featured(
    alice_client: Client, mallory_client: Client, client: Client, user: Any
) -> None:
    version = publish(user, "hello", "hello")
    prediction = prediction_create(
        version=version, input={"text": "x"}, account=user.account, created_by=user
    )
    assert mallory_client.get(f"/p/{prediction.pk}").status_code == 404
    assert mallory_client.get(f"/p/{prediction.pk}/json").status_code == 404
    assert mallory_client.post(f"/p/{prediction.pk}/cancel").status_code == 404
    # Only succeeded predictions can be featured.
    assert alice_client.post(f"/p/{prediction.pk}/feature", {"featured": "1"}).status_code == 404
    prediction_finish(prediction.pk, Outcome("succeeded", output="hello x"))
    assert alice_client.post(f"/p/{prediction.pk}/feature", {"featured": "1"}).status_code == 302
    assert mallory_client.get(f"/p/{prediction.pk}").status_code == 200
    assert mallory_client.post(f"/p/{prediction.pk}/cancel").status_code == 404
    assert "Tweak it" in client.get("/alice/hello/examples").content.decode()
    assert "hello x" in client.get("/alice/hello/examples").content.decode()


def test_cancel_a_queued_prediction(
    alice_client: Client, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    version = publish(user, "hello", "hello")
    with django_capture_on_commit_callbacks(execute=True):  # queue it for real, in Redis
        prediction = prediction_create(
            version=version, input={}, account=user.account, created_by=user
        )
    page = alice_client.get(f"/p/{prediction.pk}").content.decode()
    assert "position 1 in the queue" in page
    assert alice_client.post(f"/p/{prediction.pk}/cancel").status_code == 302
    prediction.refresh_from_db()
    assert prediction.status == "canceled"


def test_api_tab_fills_snippets_with_version_and_example_input(
    client: Client, input_types: Any
) -> None:
    html = client.get("/alice/input-types/api").content.decode()
    assert f"alice/input-types:{input_types.pk}" in html
    assert "&quot;color&quot;: &quot;green&quot;" in html
    assert "replicate.Client" in html and "new Replicate" in html


def test_versions_tab_shows_input_changes(client: Client, user: Any) -> None:
    publish(user, "hello", "m")
    from marketplace.catalog.models import Version

    old = Version.objects.get()
    # A second version of the same model with a different schema (slow-progress's).
    publish(user, "slow-progress", "m")
    assert Version.objects.count() == 2
    html = client.get("/alice/m/versions").content.decode()
    assert "added input steps" in html and "removed input text" in html
    assert old.pk[:12] in html


def test_signup_logs_in_and_password_reset_mails_a_link(client: Client, db: None) -> None:
    response = client.post(
        "/account/signup",
        {
            "username": "carol",
            "email": "carol@example.com",
            "password1": "a-Long-pass-123",
            "password2": "a-Long-pass-123",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/account/tokens"
    assert client.get("/account/tokens").status_code == 200
    assert client.post("/account/signup", {"username": "search"}).status_code == 200
    client.post("/account/logout")
    client.post("/account/password-reset", {"email": "carol@example.com"})
    assert len(mail.outbox) == 1
    assert "/account/password-reset/" in mail.outbox[0].body


def test_reserved_and_taken_names_are_refused(client: Client, user: Any) -> None:
    for name in ("search", "alice"):
        response = client.post(
            "/account/signup",
            {
                "username": name,
                "email": "x@example.com",
                "password1": "a-Long-pass-123",
                "password2": "a-Long-pass-123",
            },
        )
        assert response.status_code == 200
        assert "reserved" in response.content.decode() or "taken" in response.content.decode()


def test_tokens_are_shown_once_and_revocable(alice_client: Client, user: Any) -> None:
    response = alice_client.post("/account/tokens", {"name": "laptop"}, follow=True)
    html = response.content.decode()
    assert response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=user, name="laptop")
    raw = html.split('id="new-token" type="text" readonly value="')[1].split('"')[0]
    assert ApiToken.objects.authenticate(raw) == token
    assert raw not in alice_client.get("/account/tokens").content.decode()
    assert alice_client.post(f"/account/tokens/{token.pk}/revoke").status_code == 302
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_outsider_cannot_revoke_someone_elses_token(mallory_client: Client, user: Any) -> None:
    token, _ = ApiToken.create_for(user, "x")
    assert mallory_client.post(f"/account/tokens/{token.pk}/revoke").status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_history_filters(alice_client: Client, user: Any, outsider: Any) -> None:
    hello = publish(user, "hello", "hello")
    slow = publish(user, "slow-progress", "slow")
    done = prediction_create(version=hello, input={}, account=user.account, created_by=user)
    prediction_finish(done.pk, Outcome("succeeded", output="hi"))
    queued = prediction_create(version=slow, input={}, account=user.account, created_by=user)
    theirs = prediction_create(
        version=hello, input={}, account=outsider.account, created_by=outsider
    )
    html = alice_client.get("/account/predictions").content.decode()
    assert done.pk in html and queued.pk in html and theirs.pk not in html
    html = alice_client.get("/account/predictions?status=succeeded").content.decode()
    assert done.pk in html and queued.pk not in html
    html = alice_client.get("/account/predictions?model=alice/slow").content.decode()
    assert queued.pk in html and done.pk not in html


def test_owner_creates_edits_and_sees_push_commands(
    alice_client: Client, user: Any, settings: Any
) -> None:
    settings.REGISTRY_HOST = "models.example.com:8443"
    response = alice_client.post(
        "/new",
        {
            "name": "my-model",
            "description": "Mine",
            "visibility": "private",
            "default_hardware": user and _cpu_pk(),
        },
    )
    assert response.status_code == 302 and response["Location"] == "/alice/my-model/push"
    html = alice_client.get("/alice/my-model/push").content.decode()
    assert "docker login models.example.com:8443 --username alice" in html
    assert "docker push models.example.com:8443/alice/my-model" in html
    assert "cog push models.example.com:8443/alice/my-model" in html
    settings.REGISTRY_HOST = "registry.example.com"
    assert (
        "cog push registry.example.com/alice/my-model"
        in alice_client.get("/alice/my-model/push").content.decode()
    )
    response = alice_client.post(
        "/alice/my-model/edit",
        {"description": "Better", "readme": "**bold**", "visibility": "public"},
    )
    assert response.status_code == 302
    model = Model.objects.get(name="my-model")
    assert (model.description, model.visibility) == ("Better", "public")
    assert "<strong>bold</strong>" in alice_client.get("/alice/my-model").content.decode()
    duplicate = alice_client.post(
        "/new", {"name": "my-model", "visibility": "public", "default_hardware": _cpu_pk()}
    )
    assert "already have a model" in duplicate.content.decode()


def _cpu_pk() -> int:
    from tests.factories import cpu

    return cpu().pk


def test_profile_lists_models(client: Client, user: Any) -> None:
    publish(user, "hello", "hello")
    html = client.get("/alice").content.decode()
    assert "alice/hello" in html
    assert client.get("/nobody-here").status_code == 404


def test_owner_uploads_a_cover_image_shown_on_cards(
    alice_client: Client, client: Client, user: Any, settings: Any, tmp_path: Any
) -> None:
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    settings.MEDIA_ROOT = str(tmp_path)
    publish(user, "hello", "hello")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    cover = SimpleUploadedFile("cover.png", buffer.getvalue(), content_type="image/png")
    response = alice_client.post(
        "/alice/hello/edit",
        {"description": "d", "readme": "", "visibility": "public", "cover_image": cover},
    )
    assert response.status_code == 302
    name = Model.objects.get(name="hello").cover_image.name
    assert name.startswith("covers/") and name.endswith("/cover.png")
    assert f'src="{settings.PUBLIC_URL}/files/{name}"' in client.get("/").content.decode()
    assert client.get(f"/files/{name}").status_code == 200

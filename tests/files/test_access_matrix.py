"""The file-access matrix, on the real stack: every way a platform file can enter a prediction,
by every form of reference to it, by whoever asks.

Files: a ``/v1/files`` upload, a playground upload, a prediction output and a model cover, each
owned by alice (a person) and by acme (an organisation alice owns and carol is a member of).
References: bare, expired signature, forged signature, valid signature, the stored name, and for
the upload its ``/v1/files`` URL in the same four states. Callers: alice, alice acting for acme,
carol (an acme member acting for herself), carol acting for acme, mallory (another account) and
anonymous. Entry points: ``POST /v1/predictions``, the model and deployment endpoints, the
playground's URL field (file inputs) and its list field (string inputs); also file metadata and a
model's cover.

What must hold: a file input is accepted only for the caller's own files or a currently valid
signed URL (422 naming the field otherwise); a string input is always accepted but only the
caller's own files are ever signed in it; no answer ever carries a newly signed URL to a file the
caller's account does not own; and what reaches the model (a real Cog server that echoes the
SHA-256 of the file it downloaded and the strings it got) is exactly that.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from marketplace import storage
from marketplace.accounts.models import Account, ApiToken, Membership
from marketplace.catalog.models import Model
from marketplace.deployments.models import Deployment
from marketplace.files.access import resolve_for_model
from marketplace.files.models import StoredFile
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_cancel
from marketplace.predictions.uploads import UploadedFile
from tests.conftest import wait_for
from tests.factories import FIXTURES, UserFactory, cpu, publish
from tests.files.helpers import newly_signed_foreign, owner_of, signed_urls_in
from workers.outputs import store_output_stream

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

VALID_FORMS = {"valid", "api-valid"}


@dataclass(frozen=True)
class File:
    owner: str
    kind: str
    name: str
    sha256: str
    file_id: str | None = None


@dataclass(frozen=True)
class Ref:
    text: str
    file: File
    form: str


@dataclass(frozen=True)
class Caller:
    label: str
    user: str | None
    acting: str | None


CALLERS = [
    Caller("alice", "alice", "alice"),
    Caller("alice@acme", "alice", "acme"),
    Caller("carol", "carol", "carol"),
    Caller("carol@acme", "carol", "acme"),
    Caller("mallory", "mallory", "mallory"),
    Caller("anonymous", None, None),
]


@dataclass
class World:
    version: Any
    accounts: dict[str, Account]
    api: dict[str, APIClient]
    site: dict[str, Client]
    files: list[File] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    # prediction id → (caller, what reached the model must be)
    expect_file: dict[str, tuple[Caller, Ref]] = field(default_factory=dict)
    expect_texts: dict[str, Caller] = field(default_factory=dict)
    to_resolve: list[tuple[str, Caller]] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)


# Valid signed URLs made here get a TTL the platform never uses, so one it signs itself at the
# same second is never mistaken for one a caller sent.
TTL = 1234


def forms(f: File) -> list[Ref]:
    bare = storage.reference(f.name)
    refs = [
        Ref(bare, f, "bare"),
        Ref(storage.signed_url(f.name, ttl=-60), f, "expired"),
        Ref(f"{bare}?expires={int(time.time()) + 3600}&signature=forged", f, "forged"),
        Ref(storage.signed_url(f.name, ttl=TTL), f, "valid"),
        Ref(f.name, f, "name"),
    ]
    if f.file_id is not None:
        upload = UploadedFile.objects.get(pk=f.file_id)
        valid = upload.signed_download_url(TTL)
        refs += [
            Ref(upload.api_url, f, "api"),
            Ref(upload.signed_download_url(-60), f, "api-expired"),
            Ref(valid.replace("signature=", "signature=x"), f, "api-forged"),
            Ref(valid, f, "api-valid"),
        ]
    return refs


def may_use(caller: Caller, ref: Ref) -> bool:
    """The rule under test, for a file input."""
    if caller.acting is None or ref.form == "name":  # anonymous; a bare name is no URL
        return False
    return ref.form in VALID_FORMS or ref.file.owner == caller.acting


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def build() -> World:
    cpu()
    users = {name: UserFactory(username=name) for name in ("alice", "carol", "mallory", "echo")}
    acme = Account.objects.create(username="acme", type=Account.Type.ORGANIZATION)
    Membership.objects.create(account=acme, user=users["alice"], role="owner")
    Membership.objects.create(account=acme, user=users["carol"], role="member")
    accounts = {name: u.account for name, u in users.items()} | {"acme": acme}
    version = publish(users["echo"], FIXTURES / "cog" / "file_echo", name="file-echo")
    api: dict[str, APIClient] = {}
    site: dict[str, Client] = {}
    for caller in CALLERS:
        client = APIClient()
        if caller.user is not None:
            scope = accounts["acme"] if caller.acting == "acme" else None
            key = ApiToken.create_for(users[caller.user], caller.label, account=scope)[1]
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        api[caller.label] = client
        browser = Client()
        if caller.user is not None:
            browser.force_login(users[caller.user])
        site[caller.label] = browser
    for acting in ("alice", "acme", "carol", "mallory"):
        Deployment.objects.create(
            owner=accounts[acting],
            name="echo",
            model_id=version.model_id,
            version=version,
            hardware=cpu(),
            min_instances=0,
            max_instances=1,
        )
    world = World(version, accounts, api, site)
    for owner, color in (("alice", (200, 0, 0)), ("acme", (0, 0, 200))):
        world.files += make_files(world, owner, color)
    world.refs = [ref for f in world.files for ref in forms(f)]
    return world


def make_files(world: World, owner: str, color: tuple[int, int, int]) -> list[File]:
    """One file of each kind for ``owner``, each stored through its real entry point."""
    caller = "alice" if owner == "alice" else "alice@acme"
    files = []
    upload_secret = f"upload of {owner}".encode()
    response = world.api[caller].post(
        "/v1/files",
        {"content": SimpleUploadedFile("u.txt", upload_secret)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    upload = UploadedFile.objects.get(pk=response.json()["id"])
    files.append(File(owner, "file", str(upload.content.name), _sha(upload_secret), upload.pk))

    playground_secret = f"playground upload of {owner}".encode()
    response = world.site["alice"].post(
        "/echo/file-echo/run",
        {
            "version": world.version.pk,
            "account": owner,
            "file": SimpleUploadedFile("p.txt", playground_secret),
        },
    )
    assert response.status_code == 302 and "/p/" in response["Location"], response.content[:500]
    ran = Prediction.objects.get(pk=response["Location"].rsplit("/", 1)[1])
    name = storage.name_of(ran.input["file"])
    assert name is not None
    files.append(File(owner, "upload", name, _sha(playground_secret)))

    output_secret = f"output of {owner}".encode()
    reference = store_output_stream(
        ran.pk, "o.txt", io.BytesIO(output_secret), len(output_secret), "text/plain"
    )
    name = storage.name_of(reference)
    assert name is not None
    files.append(File(owner, "output", name, _sha(output_secret)))

    model = Model.objects.create(
        owner=world.accounts[owner], name="covered", default_hardware=cpu()
    )
    cover = png(color)
    response = world.site["alice"].post(
        f"/{owner}/covered/edit",
        {"visibility": "public", "cover_image": SimpleUploadedFile("c.png", cover, "image/png")},
    )
    assert response.status_code == 302, response.content[:2000]
    model.refresh_from_db()
    name = str(model.cover_image.name)
    assert StoredFile.objects.get(name=name).account == world.accounts[owner]
    files.append(File(owner, "cover", name, _sha(default_storage.open(name).read())))
    return files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create(world: World, entry: str, caller: Caller, input: dict[str, Any]) -> tuple[Any, str]:
    """One create through ``entry``; returns (response, the answer's text to scan)."""
    if entry == "playground":
        data: dict[str, Any] = {"version": world.version.pk}
        if caller.acting is not None:
            data["account"] = caller.acting
        if "file" in input:
            data["file__url"] = input["file"]
        if "texts" in input:
            data["texts"] = input["texts"]
        response = world.site[caller.label].post("/echo/file-echo/run", data)
        return response, response.content.decode()
    path = {
        "api": "/v1/predictions",
        "model": "/v1/models/echo/file-echo/predictions",
        "deployment": f"/v1/deployments/{caller.acting or 'alice'}/echo/predictions",
    }[entry]
    body: dict[str, Any] = {"input": input}
    if entry == "api":
        body["version"] = world.version.pk
    response = world.api[caller.label].post(path, body, format="json")
    return response, response.content.decode()


def accepted(entry: str, response: Any) -> str | None:
    """The new prediction's id, or None when refused."""
    if entry == "playground":
        location = response.get("Location", "") if response.status_code == 302 else ""
        return location.rsplit("/", 1)[1] if "/p/" in location else None
    return response.json()["id"] if response.status_code == 201 else None


def assert_refused(entry: str, caller: Caller, response: Any, text: str) -> None:
    if caller.acting is None:
        if entry == "playground":
            assert response.status_code == 302 and "/login" in response["Location"]
        else:
            assert response.status_code == 401
        return
    assert response.status_code == 422, text[:1000]
    if entry != "playground":
        assert "input.file" in {f["field"] for f in response.json()["invalid_fields"]}


def scan(world: World, caller: Caller, prediction_id: str, *texts: str) -> None:
    account_id = world.accounts[caller.acting or "alice"].pk
    for text in texts:
        leaked = newly_signed_foreign(text, account_id, world.sent)
        assert not leaked, (caller.label, prediction_id, [(u, owner_of(u)) for u in leaked])


ENTRIES = ["api", "model", "deployment", "playground"]


def test_only_own_files_and_valid_signed_urls_reach_a_model(
    start_web: Any, start_agent: Any
) -> None:
    web = start_web(API_RATE_LIMIT="1000000", API_RATE_LIMIT_CREATE="1000000")
    world = build()
    world.sent = {ref.text for ref in world.refs}
    checked = 0
    for entry in ENTRIES:
        for caller in CALLERS:
            # File inputs: one create per reference.
            for ref in world.refs:
                response, text = create(world, entry, caller, {"file": ref.text})
                prediction_id = accepted(entry, response)
                expected = may_use(caller, ref)
                assert (prediction_id is not None) == expected, (
                    entry,
                    caller.label,
                    ref.file.owner,
                    ref.file.kind,
                    ref.form,
                    response.status_code,
                    text[:500],
                )
                checked += 1
                if prediction_id is None:
                    assert_refused(entry, caller, response, text)
                    scan(world, caller, "-", text)
                    continue
                record(world, entry, caller, prediction_id, text)
                world.expect_file[prediction_id] = (caller, ref)
            # String inputs: every reference at once, always accepted, signed only if own.
            texts = [ref.text for ref in world.refs]
            response, text = create(world, entry, caller, {"texts": texts})
            prediction_id = accepted(entry, response)
            if caller.acting is None:
                assert prediction_id is None
                assert_refused(entry, caller, response, text)
                continue
            assert prediction_id is not None, (entry, caller.label, text[:1000])
            record(world, entry, caller, prediction_id, text)
            world.expect_texts[prediction_id] = caller
    assert checked == len(ENTRIES) * len(CALLERS) * len(world.refs)

    metadata_and_covers_sign_nothing(world)

    # The model and deployment endpoints share the runner with the others: their stored inputs
    # go through the runner's own resolve step here, and only the rest run on Cog.
    for prediction_id, caller in world.to_resolve:
        prediction = Prediction.objects.get(pk=prediction_id)
        payload = resolve_for_model(
            prediction.input, account_id=prediction.account_id, openapi=world.version.schema
        )
        check_reached(world, prediction_id, caller, payload.get("file"), payload.get("texts"))
        prediction_cancel(prediction)

    start_agent(idle_timeout=30, max_instances=4, PUBLIC_URL=web.url)
    running = [
        pid
        for pid in [*world.expect_file, *world.expect_texts]
        if pid not in dict(world.to_resolve)
    ]

    def all_done() -> bool:
        active = Prediction.objects.filter(pk__in=running, status__in=["starting", "processing"])
        return not active.exists()

    # Accepted file inputs of the API and the playground (own files in every form, anyone's
    # valid signed URLs) and one string-input prediction per entry and caller.
    accepted_here = sum(may_use(c, r) for c in CALLERS for r in world.refs)
    assert len(running) == 2 * (accepted_here + len(CALLERS) - 1) == 200, len(running)
    wait_for(all_done, timeout=600, interval=0.5, message="every accepted prediction to run")
    for prediction_id in running:
        prediction = Prediction.objects.get(pk=prediction_id)
        assert prediction.status == "succeeded", (prediction_id, prediction.error)
        reached = json.loads(prediction.output)
        caller = (world.expect_file.get(prediction_id) or (world.expect_texts[prediction_id],))[0]
        check_reached(world, prediction_id, caller, reached["file"], reached["texts"], ran=True)

    # Everything each caller can list afterwards, too.
    for caller in CALLERS[:-1]:
        for path in ("/v1/predictions", "/v1/files"):
            response = world.api[caller.label].get(path)
            assert response.status_code == 200
            scan(world, caller, path, response.content.decode())


def record(world: World, entry: str, caller: Caller, prediction_id: str, text: str) -> None:
    """Scan what the create answered (and, for the playground, the page it leads to)."""
    texts = [text]
    if entry == "playground":
        page = world.site[caller.label].get(f"/p/{prediction_id}")
        assert page.status_code == 200
        state = world.site[caller.label].get(f"/p/{prediction_id}/json")
        texts += [page.content.decode(), state.content.decode()]
    else:
        got = world.api[caller.label].get(f"/v1/predictions/{prediction_id}")
        texts.append(got.content.decode())
    scan(world, caller, prediction_id, *texts)
    if entry in ("model", "deployment"):
        world.to_resolve.append((prediction_id, caller))


def check_reached(
    world: World,
    prediction_id: str,
    caller: Caller,
    file_value: Any,
    texts: Any,
    ran: bool = False,
) -> None:
    """What the model got: the file input's content (ran) or URL (resolved), and the strings."""
    acting = world.accounts[caller.acting or "alice"].pk
    if prediction_id in world.expect_file:
        ref = world.expect_file[prediction_id][1]
        if ran:
            assert file_value == ref.file.sha256, (caller.label, ref.form, ref.file.kind)
        elif ref.form in VALID_FORMS:
            assert file_value == ref.text  # passed on unchanged, never re-signed
        else:
            assert signed_urls_in(file_value) == [file_value] and owner_of(file_value) == acting
    if prediction_id in world.expect_texts:
        assert isinstance(texts, list) and len(texts) == len(world.refs)
        for ref, got in zip(world.refs, texts, strict=True):
            if ref.form in VALID_FORMS or ref.form == "name" or ref.file.owner != caller.acting:
                # Never signed anew: exactly what was sent.
                assert got == ref.text, (caller.label, ref.file.owner, ref.file.kind, ref.form)
            else:
                # The caller's own file, signed for the run.
                assert signed_urls_in(got) == [got] and owner_of(got) == acting, (got, ref)


def metadata_and_covers_sign_nothing(world: World) -> None:
    """File metadata keeps references as plain strings; a model's cover cannot be taken from
    another account's file."""
    texts = [ref.text for ref in world.refs]
    for caller in CALLERS[:-1]:
        response = world.api[caller.label].post(
            "/v1/files",
            {
                "content": SimpleUploadedFile("m.txt", b"m"),
                "metadata": json.dumps({"refs": texts}),
            },
            format="multipart",
        )
        assert response.status_code == 201
        assert response.json()["metadata"] == {"refs": texts}
        scan(world, caller, "metadata", response.content.decode())
        name = f"from-{caller.label.replace('@', '-')}"
        for i, ref in enumerate(r for r in world.refs if r.form in ("bare", "valid", "api")):
            response = world.api[caller.label].post(
                "/v1/models",
                {
                    "owner": caller.acting,
                    "name": f"{name}-{i}",
                    "visibility": "private",
                    "hardware": "cpu",
                    "cover_image_url": ref.text,
                },
                format="json",
            )
            # The platform fetches a cover URL as any outsider would: only what anyone may read
            # (a public cover, a currently valid signed URL) that is an image becomes a cover
            # (a copy, stored as the new model's own); anything else is refused, nothing stored.
            readable = ref.file.kind == "cover" or ref.form in VALID_FORMS
            if response.status_code == 201:
                assert readable, (caller.label, ref.file.kind, ref.form)
            else:
                assert response.status_code == 400, response.content
                fields = [f["field"] for f in response.json()["invalid_fields"]]
                assert fields == ["cover_image_url"], response.content
            scan(world, caller, "cover", response.content.decode())
    anonymous = world.api["anonymous"].post("/v1/files", {"content": SimpleUploadedFile("a", b"a")})
    assert anonymous.status_code == 401

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils import timezone

from marketplace.accounts.models import Account, User
from marketplace.accounts.validators import RESERVED_NAMES
from marketplace.catalog import covers
from marketplace.catalog.models import Hardware, Model, Version
from marketplace.catalog.tags import clean_tags


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="For password resets.")

    class Meta:
        model = User
        fields = ("username", "email")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if username in RESERVED_NAMES:
            raise forms.ValidationError("That name is reserved.")
        if Account.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That name is taken.")
        return username


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'laptop'.")
    scope = forms.ChoiceField(
        required=False,
        label="Acts for",
        help_text="Your own account, or one organization: it sees only that account's private "
        "things (and public ones), and its predictions are billed there.",
    )
    permission = forms.ChoiceField(
        choices=[("write", "read and write"), ("read", "read only")],
        initial="write",
        required=False,
        help_text="A read-only token can list and fetch, never create, change or push.",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional: the token stops working at the start of this day (UTC).",
    )

    def __init__(self, *args: Any, accounts: list[Account], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accounts = {a.username: a for a in accounts}
        field = self.fields["scope"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            (a.username, a.username + (" (organization)" if a.is_organization else ""))
            for a in accounts
        ]

    def clean_scope(self) -> Account:
        return self.accounts[self.cleaned_data.get("scope") or next(iter(self.accounts))]

    def clean_permission(self) -> str:
        return self.cleaned_data.get("permission") or "write"

    def clean_expires_on(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        when = datetime.combine(day, time.min, tzinfo=UTC)
        if when <= timezone.now():
            raise forms.ValidationError("Choose a day after today.")
        return when


class ModelCreateForm(forms.ModelForm):
    owner = forms.ChoiceField(
        required=False, help_text="You (the default), or an organization you can write to."
    )
    default_hardware = forms.ModelChoiceField(
        queryset=Hardware.objects.filter(is_active=True), label="Hardware", empty_label=None
    )

    class Meta:
        model = Model
        fields = ("name", "description", "visibility", "default_hardware")
        help_texts = {"name": "Lowercase letters, digits and . _ - between them."}

    field_order = ("owner", "name", "description", "visibility", "default_hardware")

    def __init__(self, *args: Any, owners: list[Account], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The person's own account comes first: the default owner.
        self.owners = {a.username: a for a in owners}
        field = self.fields["owner"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(a.username, a.username) for a in owners]

    def clean_owner(self) -> Account:
        return self.owners[self.cleaned_data.get("owner") or next(iter(self.owners))]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        owner, name = cleaned.get("owner"), cleaned.get("name")
        if owner is not None and name and Model.objects.filter(owner=owner, name=name).exists():
            who = "You already have" if owner.user_id else f"{owner.username} already has"
            self.add_error("name", f"{who} a model with that name.")
        return cleaned

    def save(self, commit: bool = True) -> Model:
        model = super().save(commit=False)
        model.owner = self.cleaned_data["owner"]
        if commit:
            model.save()
        return model


class ModelEditForm(forms.ModelForm):
    # Not the model's fields: the view stores them through catalog.tags and catalog.covers.
    tags = forms.CharField(
        required=False,
        max_length=400,
        help_text="Comma-separated, e.g. text-to-image, anime (at most 10). Explore and search "
        "filter by them.",
    )
    cover_image = forms.ImageField(
        required=False,
        label="Cover image",
        help_text="PNG, JPEG, WebP or GIF, at most 5 MB. Shown on the model's card and page.",
    )

    class Meta:
        model = Model
        fields = ("description", "readme", "visibility", "idle_timeout")
        widgets = {"readme": forms.Textarea(attrs={"rows": 16})}
        labels = {"idle_timeout": "Idle timeout (seconds)"}
        help_texts = {
            "readme": "Markdown. Scripts, styles and event handlers are removed.",
            "idle_timeout": "How long an idle instance of this model stays up for the next "
            "prediction before it stops (a cold start follows). Empty: the platform default.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["tags"] = ", ".join(self.instance.tags.values_list("name", flat=True))

    def clean_tags(self) -> list[str]:
        try:
            return clean_tags(self.cleaned_data.get("tags") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_cover_image(self) -> Any:
        upload = self.cleaned_data.get("cover_image")
        if upload:
            upload.seek(0)
            try:
                covers.check_image(upload.read(covers.COVER_MAX_BYTES + 1))
            except covers.CoverRefused as exc:
                raise forms.ValidationError(str(exc)) from exc
            upload.seek(0)
        return upload


# The most an owner may charge per prediction or output item, or add per second, from the site;
# staff can set more with `manage.py set_price`.
MAX_UNIT_PRICE = Decimal(1000)
MAX_MARKUP_PER_SECOND = Decimal(1)


class VersionPriceForm(forms.Form):
    """A version's flat price: charged instead of hardware time; empty = hardware time, plus the
    owner's optional markup per second."""

    unit_price = forms.DecimalField(
        label="Price (USD)",
        required=False,
        min_value=Decimal(0),
        max_value=MAX_UNIT_PRICE,
        max_digits=12,
        decimal_places=6,
        help_text="Empty: charge hardware time instead.",
    )
    price_unit = forms.ChoiceField(
        label="Per",
        choices=[
            (Version.PriceUnit.PREDICTION, "prediction"),
            (Version.PriceUnit.OUTPUT_ITEM, "output item"),
        ],
    )
    markup_per_second = forms.DecimalField(
        label="Markup per second (USD)",
        required=False,
        min_value=Decimal(0),
        max_value=MAX_MARKUP_PER_SECOND,
        max_digits=14,
        decimal_places=8,
        help_text="Added to the hardware's price per second and paid to you, less the "
        "platform fee. Only without a flat price.",
    )

    def __init__(self, *args: Any, version: Version, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "unit_price": version.unit_price,
                "price_unit": version.price_unit,
                "markup_per_second": version.markup_per_second or None,
            },
        )
        # One form per version on a page: ids must differ, names stay plain.
        kwargs.setdefault("auto_id", f"id_%s_{version.pk[:12]}")
        super().__init__(*args, **kwargs)
        self.version = version

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("unit_price") is not None and data.get("markup_per_second"):
            self.add_error(
                "markup_per_second",
                "a flat price replaces hardware time, so a markup on it would never be "
                "charged: clear the price or the markup",
            )
        return data

    def save(self) -> Version:
        version = self.version
        version.unit_price = self.cleaned_data["unit_price"]
        version.price_unit = self.cleaned_data["price_unit"]
        version.markup_per_second = self.cleaned_data["markup_per_second"] or Decimal(0)
        version.save(update_fields=["unit_price", "price_unit", "markup_per_second"])
        return version


class DeploymentForm(forms.Form):
    """A deployment's settings; ``deployments.config`` validates them (the API's rules)."""

    name = forms.CharField(max_length=100, help_text="Lowercase letters, digits and . _ - .")
    model = forms.CharField(max_length=200, help_text="owner/name of the model to run.")
    version = forms.CharField(max_length=64, help_text="The version id to run.")
    hardware = forms.ChoiceField(choices=())
    min_instances = forms.IntegerField(
        min_value=0, initial=0, help_text="Instances kept running however idle (0: scale to zero)."
    )
    max_instances = forms.IntegerField(min_value=1, initial=1, help_text="The most it scales to.")
    idle_timeout = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Seconds an idle instance above the minimum stays up (empty: the default).",
    )

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hardware = forms.ChoiceField(
            choices=[
                (h.sku, f"{h.name} ({h.sku})")
                for h in Hardware.objects.filter(is_active=True).order_by("sku")
            ]
        )
        self.fields["hardware"] = hardware
        if editing:
            for fixed in ("name", "model"):
                self.fields[fixed].disabled = True
                self.fields[fixed].required = False

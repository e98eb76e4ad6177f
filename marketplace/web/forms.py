from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm

from marketplace.accounts.models import Account, User
from marketplace.catalog.models import Hardware, Model, Version

# First path segments the site uses itself: an account with one of these names would be
# unreachable at /<name>.
RESERVED_NAMES = frozenset(
    {"account", "admin", "api", "collections", "files", "new", "p", "search", "static", "v1"}
)


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


class ModelCreateForm(forms.ModelForm):
    default_hardware = forms.ModelChoiceField(
        queryset=Hardware.objects.filter(is_active=True), label="Hardware", empty_label=None
    )

    class Meta:
        model = Model
        fields = ("name", "description", "visibility", "default_hardware")
        help_texts = {"name": "Lowercase letters, digits and . _ - between them."}

    def __init__(self, *args: Any, owner: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if Model.objects.filter(owner=self.owner, name=name).exists():
            raise forms.ValidationError("You already have a model with that name.")
        return name


class ModelEditForm(forms.ModelForm):
    class Meta:
        model = Model
        fields = ("description", "readme", "cover_image", "visibility", "idle_timeout")
        widgets = {"readme": forms.Textarea(attrs={"rows": 16})}
        labels = {"idle_timeout": "Idle timeout (seconds)"}
        help_texts = {
            "idle_timeout": "How long an idle instance of this model stays up for the next "
            "prediction before it stops (a cold start follows). Empty: the platform default."
        }
        help_texts = {"readme": "Markdown. Scripts, styles and event handlers are removed."}


# The most an owner may charge per prediction or output item from the site; staff can set more
# with `manage.py set_price`.
MAX_UNIT_PRICE = Decimal(1000)


class VersionPriceForm(forms.Form):
    """A version's flat price: charged instead of hardware time; empty = hardware time."""

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

    def __init__(self, *args: Any, version: Version, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial", {"unit_price": version.unit_price, "price_unit": version.price_unit}
        )
        # One form per version on a page: ids must differ, names stay plain.
        kwargs.setdefault("auto_id", f"id_%s_{version.pk[:12]}")
        super().__init__(*args, **kwargs)
        self.version = version

    def save(self) -> Version:
        version = self.version
        version.unit_price = self.cleaned_data["unit_price"]
        version.price_unit = self.cleaned_data["price_unit"]
        version.save(update_fields=["unit_price", "price_unit"])
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

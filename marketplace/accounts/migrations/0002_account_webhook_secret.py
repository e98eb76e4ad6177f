from django.db import migrations, models

import marketplace.accounts.models


def distinct_secrets(apps, schema_editor):  # type: ignore[no-untyped-def]
    # AddField gave every existing account the same secret; each needs its own.
    Account = apps.get_model("accounts", "Account")
    for account in Account.objects.only("pk"):
        Account.objects.filter(pk=account.pk).update(
            webhook_secret=marketplace.accounts.models.new_webhook_secret()
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="account",
            name="webhook_secret",
            field=models.CharField(
                default=marketplace.accounts.models.new_webhook_secret,
                editable=False,
                max_length=80,
            ),
        ),
        migrations.RunPython(distinct_secrets, migrations.RunPython.noop),
    ]

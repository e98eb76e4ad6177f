"""Rolled-up totals of finished history, so that reading them costs the same at any age."""

from __future__ import annotations

from django.db import models


class Rollup(models.Model):
    """What the rows of one kind (``name``) that ended before ``until`` add up to. Rows that
    end later are added at read time and rolled in later (``marketplace.rollups.totals``)."""

    name = models.CharField(max_length=40, primary_key=True)
    until = models.DateTimeField()
    totals = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.name} until {self.until:%Y-%m-%d %H:%M:%S}"

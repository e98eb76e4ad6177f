from django.urls import path

from marketplace.billing import api
from marketplace.earnings.api import EarningsApi

urlpatterns = [
    path("billing", api.BalanceApi.as_view(), name="api-billing"),
    path("billing/quote", api.QuoteApi.as_view(), name="api-billing-quote"),
    path("earnings", EarningsApi.as_view(), name="api-earnings"),
]

from django.urls import path

from marketplace.billing import api

urlpatterns = [
    path("billing", api.BalanceApi.as_view(), name="api-billing"),
    path("billing/quote", api.QuoteApi.as_view(), name="api-billing-quote"),
]

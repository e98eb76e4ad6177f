from django.urls import path

from marketplace.billing import views

urlpatterns = [
    path("", views.billing_page, name="billing"),
    path("usage.csv", views.usage_csv, name="billing-usage-csv"),
    path("card", views.card_setup, name="billing-card"),
    path("credits", views.credits_buy, name="billing-credits"),
    path("portal", views.portal, name="billing-portal"),
    path("caps", views.caps_update, name="billing-caps"),
    path("stripe/webhook/", views.stripe_webhook, name="billing-stripe-webhook"),
]

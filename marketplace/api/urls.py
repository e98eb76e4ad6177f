from django.urls import include, path

from marketplace.predictions import api as predictions

urlpatterns = [
    path("predictions", predictions.predictions_create, name="api-predictions"),
    path(
        "predictions/<str:prediction_id>",
        predictions.PredictionDetailApi.as_view(),
        name="api-prediction",
    ),
    path(
        "predictions/<str:prediction_id>/cancel",
        predictions.PredictionCancelApi.as_view(),
        name="api-prediction-cancel",
    ),
    path("", include("marketplace.billing.api_urls")),
]

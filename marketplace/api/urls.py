from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from marketplace.api.errors import not_found
from marketplace.audit.views import AuditApi
from marketplace.catalog import api as catalog
from marketplace.deployments import api as deployments
from marketplace.predictions import api as predictions
from marketplace.predictions import files_api as files
from marketplace.predictions import streams
from marketplace.predictions import trainings_api as trainings
from marketplace.predictions import webhooks_api as webhooks

MODEL = "models/<str:owner>/<str:name>"
DEPLOYMENT = "deployments/<str:owner>/<str:name>"

urlpatterns = [
    path("predictions", predictions.predictions_root, name="api-predictions"),
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
    path(
        "predictions/<str:prediction_id>/webhooks",
        webhooks.WebhookDeliveryListApi.as_view(),
        name="api-prediction-webhooks",
    ),
    path(
        "predictions/<str:prediction_id>/webhooks/<str:message_id>/redeliver",
        webhooks.WebhookRedeliverApi.as_view(),
        name="api-prediction-webhook-redeliver",
    ),
    path("trainings", trainings.TrainingCollectionApi.as_view(), name="api-trainings"),
    path("trainings/<str:training_id>", trainings.TrainingDetailApi.as_view(), name="api-training"),
    path(
        "trainings/<str:training_id>/cancel",
        trainings.TrainingCancelApi.as_view(),
        name="api-training-cancel",
    ),
    path("streams/<str:stream_token>", streams.stream, name="api-stream"),
    path("models", catalog.ModelCollectionApi.as_view(), name="api-models"),
    path(MODEL, catalog.ModelDetailApi.as_view(), name="api-model"),
    path(f"{MODEL}/readme", catalog.ModelReadmeApi.as_view(), name="api-model-readme"),
    path(f"{MODEL}/examples", catalog.ModelExamplesApi.as_view(), name="api-model-examples"),
    path(
        f"{MODEL}/predictions",
        predictions.model_predictions_create,
        name="api-model-predictions",
    ),
    path(f"{MODEL}/prewarm", deployments.ModelPrewarmApi.as_view(), name="api-model-prewarm"),
    path("deployments", deployments.DeploymentCollectionApi.as_view(), name="api-deployments"),
    path(DEPLOYMENT, deployments.DeploymentDetailApi.as_view(), name="api-deployment"),
    path(
        f"{DEPLOYMENT}/predictions",
        deployments.deployment_predictions_create,
        name="api-deployment-predictions",
    ),
    path(
        f"{DEPLOYMENT}/prewarm",
        deployments.DeploymentPrewarmApi.as_view(),
        name="api-deployment-prewarm",
    ),
    path(f"{MODEL}/versions", catalog.VersionCollectionApi.as_view(), name="api-versions"),
    path(
        f"{MODEL}/versions/<str:version_id>",
        catalog.VersionDetailApi.as_view(),
        name="api-version",
    ),
    path(
        f"{MODEL}/versions/<str:version_id>/trainings",
        trainings.TrainingCreateApi.as_view(),
        name="api-version-trainings",
    ),
    path("collections", catalog.CollectionListApi.as_view(), name="api-collections"),
    path("collections/<slug:slug>", catalog.CollectionDetailApi.as_view(), name="api-collection"),
    path("hardware", catalog.HardwareListApi.as_view(), name="api-hardware"),
    path("account", catalog.AccountApi.as_view(), name="api-account"),
    path("search", catalog.SearchApi.as_view(), name="api-search"),
    path("webhooks/default/secret", catalog.WebhookSecretApi.as_view(), name="api-webhook-secret"),
    path("files", files.FileCollectionApi.as_view(), name="api-files"),
    path("audit", AuditApi.as_view(), name="api-audit"),
    path("files/<str:file_id>", files.FileDetailApi.as_view(), name="api-file"),
    path("files/<str:file_id>/download", files.FileDownloadApi.as_view(), name="api-file-download"),
    path(
        "files/<str:file_id>/download/<str:name>",
        files.FileDownloadNamedApi.as_view(),
        name="api-file-download-named",
    ),
    path("", include("marketplace.billing.api_urls")),
    # Our own API's description (generated) and its docs page.
    path("openapi.json", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: whatever else is under /v1 answers a problem document.
    re_path(r"^(?P<path>.*)$", not_found, name="api-not-found"),
]

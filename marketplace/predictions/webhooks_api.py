"""The delivery log of a prediction's webhooks, for its owner, with a redeliver action."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api import openapi as o
from marketplace.api.authentication import acting_account
from marketplace.api.errors import Problem
from marketplace.predictions.api import prediction_of_caller
from marketplace.predictions.webhooks import WebhookDelivery, redeliver


class WebhookDeliveryListApi(APIView):
    @extend_schema(operation_id="predictions.webhooks.list", responses=o.DeliveryList)
    def get(self, request: Request, prediction_id: str) -> Response:
        prediction = prediction_of_caller(request, prediction_id)
        deliveries = prediction.webhook_deliveries.prefetch_related("attempts")
        return Response({"results": [d.to_api() for d in deliveries]})


class WebhookRedeliverApi(APIView):
    @extend_schema(
        operation_id="predictions.webhooks.redeliver", request=None, responses={202: o.DeliveryOut}
    )
    def post(self, request: Request, prediction_id: str, message_id: str) -> Response:
        prediction = prediction_of_caller(request, prediction_id)
        acting_account(request, write=True)
        delivery = WebhookDelivery.objects.filter(
            prediction=prediction, message_id=message_id
        ).first()
        if delivery is None:
            raise Problem(404, "The requested resource could not be found.")
        return Response(redeliver(delivery).to_api(), status=202)

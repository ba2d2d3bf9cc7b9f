"""POST /api/v1/events and /api/v1/batch: thin views over `events_ingest`.

DRF authenticates, throttles, negotiates and renders errors as for every endpoint; the body is read and
decoded by `parsers` (msgspec), and an accepted answer is encoded by msgspec when JSON is what was asked.
"""

import logging
from datetime import datetime
from typing import Any

import msgspec
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from observatory import correlation

from . import schema
from .auth import ApiKeyAuthentication, HasServiceKey
from .parsers import IngestJSONParser, batch_from_body, event_from_body, read_body
from .services import IngestResult, api_key_touch, events_ingest
from .throttling import ApiKeyRateThrottle

logger = logging.getLogger(__name__)


class _IngestView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasServiceKey]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [IngestJSONParser]

    def _ingest(
        self,
        request: Request,
        items: list[Any],
        raws: list[bytes] | None = None,
        sent_at: datetime | None = None,
    ) -> IngestResult:
        now = timezone.now()
        result = events_ingest(
            items=items,
            raws=raws,
            api_key=request.auth,
            received_at=now,
            sent_at=sent_at,
            # X-Correlation-ID, else django-guid's Correlation-ID, else a W3C traceparent's trace id.
            header_correlation_id=correlation.incoming_from_environ(request.META) or "",
            ingest_node=settings.INGEST_NODE,
        )
        try:
            api_key_touch(api_key=request.auth, now=now)
        except DatabaseError:  # the events are committed: answering 503 now would make the sender re-send
            logger.warning("could not record the use of key %s", request.auth.prefix, exc_info=True)
        return result

    def _accepted(self, request: Request, body: dict[str, Any]) -> HttpResponse:
        """Answer 202 with `body`: encoded by msgspec when plain JSON was negotiated (byte for byte what
        DRF's JSONRenderer writes), else through DRF's renderers (the browsable API, `; indent=`)."""
        if (
            type(request.accepted_renderer) is not JSONRenderer
            or request.accepted_media_type != "application/json"
        ):
            return Response(body, status=status.HTTP_202_ACCEPTED)
        # JSONRenderer escapes the two line separators that JavaScript strings cannot hold.
        content = (
            msgspec.json.encode(body)
            .replace(b"\xe2\x80\xa8", b"\\u2028")
            .replace(b"\xe2\x80\xa9", b"\\u2029")
        )
        return HttpResponse(content, status=status.HTTP_202_ACCEPTED, content_type="application/json")


class BatchIngestView(_IngestView):
    @extend_schema(
        operation_id="ingest_batch",
        summary="Send up to 1000 events or log lines",
        request=schema.BatchSchema,
        responses={202: schema.IngestResultSchema, **schema.COMMON_RESPONSES},
        examples=[schema.BATCH_EXAMPLE],
        tags=["ingestion"],
    )
    def post(self, request: Request) -> HttpResponse:
        """Store the valid items of a batch; list each refused item with its index and errors."""
        batch = batch_from_body(read_body(request))
        result = self._ingest(request, batch.items, batch.raws, batch.sent_at)
        return self._accepted(request, result.as_response())


class EventIngestView(_IngestView):
    @extend_schema(
        operation_id="ingest_event",
        summary="Send one event or log line",
        request=schema.EventSchema,
        responses={202: schema.SingleResultSchema, **schema.EVENT_RESPONSES},
        examples=[schema.METRIC_EXAMPLE, schema.LOG_RECORD_EXAMPLE],
        tags=["ingestion"],
    )
    def post(self, request: Request) -> HttpResponse:
        """Store one event; 400 with the field errors when it is invalid."""
        item, raw = event_from_body(read_body(request))
        result = self._ingest(request, [item], None if raw is None else [raw])
        if result.rejected:
            errors = result.rejected[0]["errors"]
            code = status.HTTP_403_FORBIDDEN if result.out_of_scope else status.HTTP_400_BAD_REQUEST
            return Response({"detail": "The event was refused.", "errors": errors}, status=code)
        return self._accepted(request, {**result.as_response(), "event_id": result.event_ids[0]})

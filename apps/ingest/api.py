"""POST /api/v1/events and /api/v1/batch: thin views over `events_ingest`."""

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.jsonlimits import PayloadTooLarge
from observatory import correlation

from . import schema
from .auth import ApiKeyAuthentication, HasServiceKey
from .conform import ConformError, parse_timestamp
from .parsers import IngestJSONParser
from .services import IngestResult, api_key_touch, events_ingest
from .throttling import ApiKeyRateThrottle

logger = logging.getLogger(__name__)


class _IngestView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasServiceKey]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [IngestJSONParser]

    def _ingest(self, request: Request, items: list[Any], sent_at=None) -> IngestResult:
        now = timezone.now()
        header_cid = request.META.get("HTTP_X_CORRELATION_ID", "").strip()
        result = events_ingest(
            items=items,
            api_key=request.auth,
            received_at=now,
            sent_at=sent_at,
            header_correlation_id=header_cid if correlation.is_valid(header_cid) else "",
            ingest_node=settings.INGEST_NODE,
        )
        try:
            api_key_touch(api_key=request.auth, now=now)
        except DatabaseError:  # the events are committed: answering 503 now would make the sender re-send
            logger.warning("could not record the use of key %s", request.auth.prefix, exc_info=True)
        return result


class BatchIngestView(_IngestView):
    @extend_schema(
        operation_id="ingest_batch",
        summary="Send up to 1000 events or log lines",
        request=schema.BatchSchema,
        responses={202: schema.IngestResultSchema, **schema.COMMON_RESPONSES},
        examples=[schema.BATCH_EXAMPLE],
        tags=["ingestion"],
    )
    def post(self, request: Request) -> Response:
        """Store the valid items of a batch; list each refused item with its index and errors."""
        items, sent_at = _unpack_batch(request.data)
        result = self._ingest(request, items, sent_at)
        return Response(result.as_response(), status=status.HTTP_202_ACCEPTED)


class EventIngestView(_IngestView):
    @extend_schema(
        operation_id="ingest_event",
        summary="Send one event or log line",
        request=schema.EventSchema,
        responses={202: schema.SingleResultSchema, **schema.EVENT_RESPONSES},
        examples=[schema.METRIC_EXAMPLE, schema.LOG_RECORD_EXAMPLE],
        tags=["ingestion"],
    )
    def post(self, request: Request) -> Response:
        """Store one event; 400 with the field errors when it is invalid."""
        if not isinstance(request.data, dict):
            raise exceptions.ParseError("Send one event as a JSON object (for many, use /api/v1/batch).")
        result = self._ingest(request, [request.data])
        if result.rejected:
            errors = result.rejected[0]["errors"]
            code = status.HTTP_403_FORBIDDEN if result.out_of_scope else status.HTTP_400_BAD_REQUEST
            return Response({"detail": "The event was refused.", "errors": errors}, status=code)
        body = {**result.as_response(), "event_id": result.event_ids[0]}
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _unpack_batch(data: Any) -> tuple[list[Any], Any]:
    """Return (items, sent_at) from `{"batch": [...], "sent_at": ...}` or a bare array."""
    sent_at = None
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"batch", "sent_at"})
        if "batch" not in data or unknown:
            hint = f" (unexpected keys: {', '.join(unknown)})" if unknown else ""
            raise exceptions.ParseError('Send {"batch": [...], "sent_at": ...} or a JSON array' + hint + ".")
        items = data["batch"]
        if data.get("sent_at") is not None:
            try:
                sent_at = parse_timestamp(data["sent_at"])
            except ConformError as exc:
                raise exceptions.ParseError(f"sent_at: {exc.message}") from None
    elif isinstance(data, list):
        items = data
    else:
        raise exceptions.ParseError('Send {"batch": [...], "sent_at": ...} or a JSON array.')
    if not isinstance(items, list):
        raise exceptions.ParseError("batch must be a JSON array of events.")
    if not items:
        raise exceptions.ParseError("batch is empty.")
    if len(items) > settings.INGEST_MAX_BATCH_EVENTS:
        raise PayloadTooLarge(
            f"batch has {len(items)} events; the limit is {settings.INGEST_MAX_BATCH_EVENTS} per request."
        )
    return items, sent_at

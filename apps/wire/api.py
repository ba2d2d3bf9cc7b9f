"""PostHog capture, Segment's HTTP tracking API and OTLP/HTTP: thin views over `foreign_events_ingest`.

Same guarantees as /api/v1/batch (conform and enrich, an answer only after the commit, idempotency, limits,
throttling per key, 503 when the database is down); each format answers in the shape its SDKs check.
"""

import logging
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.exceptions import api_exception_handler
from apps.common.jsonlimits import PayloadTooLarge
from apps.ingest.conform import ConformError, parse_timestamp
from apps.ingest.services import IngestResult, api_key_touch
from apps.ingest.throttling import ApiKeyRateThrottle
from observatory import correlation

from . import otlp, otlp_items, posthog, schema, segment
from .auth import (
    OtlpBearerAuthentication,
    PostHogFlagsKeyAuthentication,
    PostHogKeyAuthentication,
    PostHogPathKeyAuthentication,
    SegmentWriteKeyAuthentication,
    posthog_capture,
)
from .body import json_body, media_type_of, raw_body
from .services import foreign_events_ingest

logger = logging.getLogger(__name__)


class _AnswerAsTheFormatDoes(BaseContentNegotiation):
    """Never 406: each format answers in its own encoding whatever `Accept` asks for. An OTLP exporter may
    accept only protobuf (what the OTLP views answer in), which DRF's JSON renderers would refuse, and a
    406 is not retried: the export would be lost."""

    def select_parser(self, request: Request, parsers: list) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


class _WireView(APIView):
    # The authentication classes refuse a request without a key; this only says a key is needed.
    permission_classes = [IsAuthenticated]
    content_negotiation_class = _AnswerAsTheFormatDoes
    throttle_classes = [ApiKeyRateThrottle]
    # No DRF parser: body.json_body reads the body (DRF would hand a chunked one over as empty).
    parser_classes: list = []

    def refuse_other_methods(self, request: Request) -> None:
        """Answer 405 (with Allow) to a method the view has no handler for. Called before authentication
        where the key may be in the body (PostHog, Segment): reading it, a GET was a 400 "body is empty"."""
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise exceptions.MethodNotAllowed(request.method)

    def _store(
        self,
        request: Request,
        *,
        events: list[Any],
        sent_at: Any,
        sent_at_name: str,
        to_item: Callable[..., Any],
        wire_names: Mapping[str, str],
        json_ready: bool = False,
    ) -> IngestResult:
        if len(events) > settings.INGEST_MAX_BATCH_EVENTS:
            limit = settings.INGEST_MAX_BATCH_EVENTS
            raise PayloadTooLarge(f"batch has {len(events)} events; the limit is {limit} per request.")
        now = timezone.now()
        api_key = request.auth
        result = foreign_events_ingest(
            events=events,
            to_item=partial(to_item, service=api_key.service.name),
            wire_names=wire_names,
            api_key=api_key,
            received_at=now,
            sent_at=_read_sent_at(sent_at, sent_at_name),
            header_correlation_id=correlation.incoming_from_environ(request.META) or "",
            ingest_node=settings.INGEST_NODE,
            json_ready=json_ready,
        )
        try:
            api_key_touch(api_key=api_key, now=now)
        except DatabaseError:  # the events are committed: answering 503 now would make the sender re-send
            logger.warning("could not record the use of key %s", api_key.prefix, exc_info=True)
        return result


def _read_sent_at(raw: Any, name: str):
    if raw is None:
        return None
    try:
        return parse_timestamp(raw)
    except ConformError as exc:
        raise exceptions.ParseError(f"{name}: {exc.message}") from None


def _describe(errors: Mapping[str, str]) -> str:
    return "; ".join(f"{field}: {message}" for field, message in errors.items())


# --- PostHog capture --------------------------------------------------------------------------------------


def _refuse_unread_compression(request: Request) -> None:
    """415 for a posthog-js encoding not read here; called before authentication reads the body, where lz64
    text would only be reported as bad JSON."""
    compression = request.query_params.get("compression", "").strip().lower()
    if compression not in posthog.READABLE_COMPRESSION:
        raise exceptions.UnsupportedMediaType(
            compression, detail=f"compression={compression!r} is not supported; send JSON, gzip or base64."
        )


class PostHogCaptureView(_WireView):
    """What posthog SDKs given host=<portal>/posthog post to: 200 {"status": 1, ...} when the request was
    read, refused events listed; 401 for any key problem."""

    authentication_classes = [PostHogKeyAuthentication]

    def initial(self, request: Request, *args, **kwargs) -> None:
        self.refuse_other_methods(request)
        _refuse_unread_compression(request)
        super().initial(request, *args, **kwargs)

    def post(self, request: Request) -> Response:
        capture = posthog_capture(request)
        sent_at = capture.sent_at
        if sent_at is None:  # older posthog-js: the request time in the query string
            sent_at = posthog.query_sent_at(request.query_params.get("_"))
        result = self._store(
            request,
            events=capture.events,
            sent_at=sent_at,
            sent_at_name="sent_at",
            to_item=posthog.to_item,
            wire_names=posthog.WIRE_NAMES,
        )
        if capture.single and result.rejected:
            errors = result.rejected[0]["errors"]
            body = {"detail": f"The event was refused: {_describe(errors)}.", "errors": errors}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response({"status": 1, **result.as_response()}, status=status.HTTP_200_OK)


def _posthog_operation(operation_id: str, summary: str) -> Callable[[type], type]:
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            summary=summary,
            description="The key goes in the body as `api_key` or `token` (or on each event); a single "
            "event or a bare array of events is read too. gzip by Content-Encoding, `?compression=gzip-js` "
            "or its magic bytes; posthog-js's form bodies (`data=`, base64 with `?compression=base64`). "
            "Without `sent_at`, the query's `_` (epoch ms) corrects clock skew. Answers 200 with `status: 1` "
            "once the events are committed; refused events are listed in `rejected` (a single event that is "
            "refused is a 400).",
            request={"application/json": schema.PostHogBatchSchema},
            responses=schema.posthog_responses(),
            examples=[schema.POSTHOG_BATCH_EXAMPLE],
            auth=[],
            tags=["posthog"],
        )
    )


@_posthog_operation("posthog_batch", "PostHog capture: a batch (posthog-python, -node, -go …)")
class PostHogBatchView(PostHogCaptureView):
    pass


@_posthog_operation("posthog_capture", "PostHog capture: /capture/")
class PostHogCaptureAliasView(PostHogCaptureView):
    pass


@_posthog_operation("posthog_e", "PostHog capture: /e/ (posthog-js)")
class PostHogEView(PostHogCaptureView):
    pass


@_posthog_operation("posthog_i_v0_e", "PostHog capture: /i/v0/e/")
class PostHogIV0EView(PostHogCaptureView):
    pass


@extend_schema(exclude=True)  # the /batch/ operation under another path: one operation in the schema
class PostHogAiBatchView(PostHogCaptureView):
    """/i/v0/ai/batch/: where posthog-node's `captureAi` (and @posthog/ai's wrappers) post `$ai_*` events,
    with the body of /batch/. Refused, posthog-node would drop them."""


@extend_schema(exclude=True)  # for SDKs only: there are no flags to describe
class PostHogFlagsView(_WireView):
    """/flags/ (and the older /decide/), which posthog SDKs call at start-up and for feature flags: the
    portal has none, so the answer is PostHog's "no flags" in the shape the SDK asked for; 401 for any key
    problem, as capture. A 404 here made every SDK log an error per call."""

    authentication_classes = [PostHogFlagsKeyAuthentication]
    # An SDK may ask on every feature-flag call; counting that against the key's ingestion rate would make
    # its events the ones refused. The answer is a cached key look-up and a constant.
    throttle_classes: list = []
    decide = False

    def initial(self, request: Request, *args, **kwargs) -> None:
        self.refuse_other_methods(request)
        _refuse_unread_compression(request)
        super().initial(request, *args, **kwargs)

    def post(self, request: Request) -> Response:
        answer = posthog.flags_answer(
            version=request.query_params.get("v"),
            config=request.query_params.get("config"),
            decide=self.decide,
            request_id=str(uuid.uuid4()),
            evaluated_at=int(timezone.now().timestamp() * 1000),
        )
        return Response(answer, status=status.HTTP_200_OK)


@extend_schema(exclude=True)
class PostHogDecideView(PostHogFlagsView):
    """/decide/: what posthog SDKs called before /flags/ existed; older SDK versions in services still do."""

    decide = True


@extend_schema(exclude=True)  # for posthog-js only: nothing is enabled, nothing to describe
class PostHogRemoteConfigView(_WireView):
    """/array/<key>/config, which posthog-js fetches at start-up (before /flags/) to learn what the project
    enables: nothing here (posthog.REMOTE_CONFIG), and so no /flags/ request at start-up. A 404 for a key
    that is unknown, revoked or expired, as PostHog answers for a token it has no project of; a 404 here was
    an error in every visitor's console."""

    authentication_classes = [PostHogPathKeyAuthentication]
    # Asked once per page load: counting that against the key's ingestion rate would make a busy site's
    # events the ones refused. The answer is a cached key look-up and a constant.
    throttle_classes: list = []

    def get(self, request: Request, token: str) -> HttpResponse:
        return Response(posthog.REMOTE_CONFIG, status=status.HTTP_200_OK)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if response.status_code < 500:
            # Django would log the 404 with its path, which holds the key sent: a secret in the log lines,
            # which the portal ships to itself. An unknown key is no news.
            response._has_been_logged = True
        return response


@extend_schema(exclude=True)
class PostHogRemoteConfigScriptView(PostHogRemoteConfigView):
    """/array/<key>/config.js: the same config as a script, which posthog-js (before 1.451) loads first and
    falls back to /config only when it fails; a 404 was a second console error per page."""

    def get(self, request: Request, token: str) -> HttpResponse:
        return HttpResponse(posthog.remote_config_script(token), content_type="application/javascript")


# --- Segment HTTP tracking API ----------------------------------------------------------------------------


def segment_exception_handler(exc: Exception, context: dict) -> Response | None:
    """The portal's error answers (503 + Retry-After included) with Segment's `code` and `message` added,
    which its SDKs read from an error body."""
    response = api_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        detail = response.data["detail"]
        code = getattr(detail, "code", None) or ("unavailable" if response.status_code == 503 else "error")
        response.data = {"success": False, "code": code, "message": str(detail), **response.data}
    return response


class _SegmentView(_WireView):
    authentication_classes = [SegmentWriteKeyAuthentication]

    def initial(self, request: Request, *args, **kwargs) -> None:
        self.refuse_other_methods(request)  # before authentication reads the body for writeKey
        super().initial(request, *args, **kwargs)

    def get_exception_handler(self):
        return segment_exception_handler

    def _answer(self, tracking: segment.Tracking) -> Response:
        result = self._store(
            self.request,
            events=tracking.messages,
            sent_at=tracking.sent_at,
            sent_at_name="sentAt",
            to_item=segment.to_item,
            wire_names=segment.WIRE_NAMES,
        )
        if tracking.single and result.rejected:
            errors = result.rejected[0]["errors"]
            message = f"The message was refused: {_describe(errors)}."
            body = {
                "success": False,
                "code": "invalid_message",
                "message": message,
                "detail": message,
                "errors": errors,
            }
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response({"success": True, **result.as_response()}, status=status.HTTP_200_OK)


@extend_schema_view(
    post=extend_schema(
        operation_id="segment_batch",
        summary="Segment HTTP tracking API: a batch (analytics-python, RudderStack …)",
        description="The write key as the Basic-auth user (empty password) or `writeKey` in the body. "
        'Answers 200 `{"success": true, ...}` once the messages are committed; refused messages are '
        "listed in `rejected`.",
        request={"application/json": schema.SegmentBatchSchema},
        responses=schema.segment_responses(single=False),
        examples=[schema.SEGMENT_BATCH_EXAMPLE],
        tags=["segment"],
    )
)
class SegmentBatchView(_SegmentView):
    def post(self, request: Request) -> Response:
        try:
            tracking = segment.unpack_batch(json_body(request))
        except segment.TrackingError as exc:
            raise exceptions.ParseError(str(exc)) from None
        return self._answer(tracking)


@extend_schema(exclude=True)  # segment_batch under another path: one operation in the schema
class SegmentRootBatchView(SegmentBatchView):
    """/v1/batch at the root: where @segment/analytics-node posts given host=<portal>/segment, since it
    resolves its path `/v1/batch` against the host as a URL (`new URL(path, host)` drops the host's path)."""


class SegmentMessageView(_SegmentView):
    """One message; the path names its type."""

    kind = ""

    def post(self, request: Request) -> Response:
        try:
            tracking = segment.unpack_single(json_body(request), kind=self.kind)
        except segment.TrackingError as exc:
            raise exceptions.ParseError(str(exc)) from None
        return self._answer(tracking)


def _segment_message_view(kind: str) -> type[SegmentMessageView]:
    """Return the view of /v1/<kind>, with its own operation in the schema."""
    view = type(f"Segment{kind.title()}View", (SegmentMessageView,), {"kind": kind, "__module__": __name__})
    return extend_schema_view(
        post=extend_schema(
            operation_id=f"segment_{kind}",
            summary=f"Segment HTTP tracking API: one {kind} message",
            description="The write key as the Basic-auth user (empty password) or `writeKey` in the body. "
            'Answers 200 `{"success": true, ...}` once the message is committed; 400 when it is refused.',
            request={"application/json": schema.SegmentMessageSchema},
            responses=schema.segment_responses(single=True),
            tags=["segment"],
        )
    )(view)


SEGMENT_MESSAGE_VIEWS = {kind: _segment_message_view(kind) for kind in segment.TYPES}


# --- OTLP/HTTP --------------------------------------------------------------------------------------------


class _OtlpView(_WireView):
    """What OTLP exporters given <portal>/otlp as their endpoint post to: 200 with an Export…ServiceResponse
    (`partial_success` naming refused records), or the failure's google.rpc.Status, in the request's
    encoding. Retryable failures are only 429 and 503, both with Retry-After."""

    authentication_classes = [OtlpBearerAuthentication]
    mapping: otlp_items.SignalMapping

    def post(self, request: Request) -> HttpResponse:
        media_type = media_type_of(request)
        if media_type not in otlp.MEDIA_TYPES:
            raise exceptions.UnsupportedMediaType(
                media_type,
                detail=f"Content-Type {media_type!r} is not supported; send {otlp.PROTOBUF} or {otlp.JSON}.",
            )
        signal = self.mapping.signal
        try:
            export = otlp.decode(raw_body(request), signal=signal, media_type=media_type)
        except otlp.BodyError as exc:
            raise exceptions.ParseError(str(exc)) from None
        records = self.mapping.records(export)
        result = self._store(
            request,
            events=records,
            sent_at=None,
            sent_at_name="",
            to_item=self.mapping.to_item,
            wire_names=self.mapping.wire_names,
            json_ready=True,  # made from protobuf messages: valid text, finite numbers (otlp_items.plain)
        )
        answer = otlp.export_response(
            signal,
            rejected=len(result.rejected),
            message=otlp_items.refusals(result.rejected, records, plural=signal.record_plural),
        )
        return HttpResponse(otlp.encode(answer, media_type), content_type=media_type)

    def handle_exception(self, exc: Exception) -> HttpResponse:
        """Answer a failure as OTLP says: its HTTP status, its google.rpc.Status as the body, Retry-After
        kept (429 and 503) and WWW-Authenticate (401)."""
        response = super().handle_exception(exc)
        media_type = otlp.PROTOBUF if media_type_of(self.request) == otlp.PROTOBUF else otlp.JSON
        data = response.data
        detail = data.get("detail", data) if isinstance(data, dict) else data
        status_message = otlp.failure(http_status=response.status_code, message=str(detail))
        answer = HttpResponse(
            otlp.encode(status_message, media_type), status=response.status_code, content_type=media_type
        )
        for header in ("Retry-After", "WWW-Authenticate"):
            if header in response:
                answer[header] = response[header]
        return answer


def _otlp_operation(mapping: otlp_items.SignalMapping, operation_id: str) -> Callable[[type], type]:
    signal = mapping.signal
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            summary=f"OTLP/HTTP {signal.name}: OpenTelemetry SDK exporters and Collectors",
            description=f"An {signal.request_type.__name__} in binary protobuf "
            f"(`{otlp.PROTOBUF}`) or OTLP JSON (`{otlp.JSON}`: hex trace and span ids, integer enums), gzip "
            "by Content-Encoding; the key as `Authorization: Bearer <key>`. Answers in the request's "
            f"encoding: 200 with the {signal.response_type.__name__} once the {signal.record_plural} are "
            f"committed, its `partial_success` giving how many were refused and why; a failure's body is a "
            "google.rpc.Status. Only 429 and 503 (with Retry-After) are worth retrying.",
            request=schema.otlp_request(signal),
            responses=schema.otlp_responses(signal),
            examples=[schema.OTLP_EXAMPLES[signal.name]],
            tags=["otlp"],
        )
    )


@_otlp_operation(otlp_items.LOGS, "otlp_logs")
class OtlpLogsView(_OtlpView):
    mapping = otlp_items.LOGS


@_otlp_operation(otlp_items.TRACES, "otlp_traces")
class OtlpTracesView(_OtlpView):
    mapping = otlp_items.TRACES

"""The real OpenTelemetry Python SDK, unmodified, exporting with its OTLP/HTTP exporters (protobuf) to the
portal served by gunicorn on loopback: spans and log records are stored once, counted in the series and
found in one trail under their trace id; a bad key, a bad record and a down database reach the exporters
the way the OTLP specification says they should."""

from datetime import UTC, datetime

import pytest
import requests
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from apps.accounts.actors import Actor
from apps.ingest.models import RawEvent
from apps.ingest.services import service_key_revoke
from tests.conftest import free_port
from tests.wire.conftest import series_total, wait_until_processed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PROTOBUF = "application/x-protobuf"
NINETEEN_NINETY = int(datetime(1990, 1, 1, tzinfo=UTC).timestamp()) * 10**9


class Instrumented:
    """A service set up as OpenTelemetry's documentation shows: a TracerProvider and a LoggerProvider with
    OTLP/HTTP exporters given the portal's endpoints and the key as a Bearer header. Every HTTP answer the
    exporters get is recorded; what they were handed is kept too, to export it again as a retry would."""

    def __init__(self, portal, key: str, *, service: str, stage: str, batch: bool = False, **options) -> None:
        self.answers: list[requests.Response] = []
        session = requests.Session()
        session.hooks["response"].append(lambda response, *args, **kwargs: self.answers.append(response))
        headers = {"Authorization": f"Bearer {key}"}
        options = {"headers": headers, "session": session, "timeout": 10, **options}
        self.span_exporter = OTLPSpanExporter(endpoint=portal.url + "/otlp/v1/traces", **options)
        self.log_exporter = OTLPLogExporter(endpoint=portal.url + "/otlp/v1/logs", **options)
        self.spans_handed = InMemorySpanExporter()
        self.logs_handed = InMemoryLogRecordExporter()
        resource = Resource.create({"service.name": service, "deployment.environment.name": stage})
        self.tracer_provider = TracerProvider(resource=resource)
        self.logger_provider = LoggerProvider(resource=resource)
        if batch:  # one export of everything at force_flush
            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(self.span_exporter, schedule_delay_millis=60_000)
            )
            self.logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(self.log_exporter, schedule_delay_millis=60_000)
            )
        else:
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
            self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_handed))
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs_handed))
        self.tracer = self.tracer_provider.get_tracer("tiles.handlers", "2.3.0")
        self.logger = self.logger_provider.get_logger("tiles.handlers", "2.3.0")

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()

    def export_again(self) -> tuple:
        """Export what was handed to the exporters once more (a retry after a lost answer)."""
        return (
            self.span_exporter.export(self.spans_handed.get_finished_spans()),
            self.log_exporter.export(self.logs_handed.get_finished_logs()),
        )

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def hex_id(number: int, digits: int) -> str:
    return format(number, f"0{digits}x")


@pytest.mark.parametrize("compression", [None, Compression.Gzip], ids=["plain", "gzip"])
def test_sdk_spans_and_logs_are_stored_once_counted_and_in_one_trail(portal, make_key, reader, compression):
    _, key = make_key(service="tiles-api", stage="prod")
    app = Instrumented(portal, key, service="tiles-api", stage="prod", compression=compression)

    with app.tracer.start_as_current_span("GET /tiles/{z}", attributes={"enduser.id": "user-9"}) as root:
        app.logger.emit(
            body="tile cache miss",
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            attributes={"enduser.id": "user-9", "tile.zoom": 12},
        )
        with app.tracer.start_as_current_span("render") as child:
            child.set_status(Status(StatusCode.ERROR, "renderer crashed"))
    app.flush()
    again = app.export_again()
    app.shutdown()

    assert again == (SpanExportResult.SUCCESS, LogRecordExportResult.SUCCESS)
    assert [(a.status_code, a.headers["Content-Type"]) for a in app.answers] == [(200, PROTOBUF)] * 5
    assert {a.request.headers.get("Content-Encoding") for a in app.answers} == {
        "gzip" if compression else None
    }
    trace_id = hex_id(root.get_span_context().trace_id, 32)
    root_id, child_id = (
        hex_id(root.get_span_context().span_id, 16),
        hex_id(child.get_span_context().span_id, 16),
    )
    stored = {e.event: e for e in RawEvent.objects.filter(service="tiles-api")}
    assert len(stored) == RawEvent.objects.count() == 3  # the retry stored nothing twice
    wait_until_processed([e.event_id for e in stored.values()])
    for name in ("GET /tiles/{z}", "render", "log"):
        assert series_total(reader, event=name, service="tiles-api") == 1

    events = reader.get(f"/api/v1/traces/{trace_id}").json()["events"]
    assert {(e["service"], e["stage"], e["correlation_id"]) for e in events} == {
        ("tiles-api", "prod", trace_id)
    }
    by_name = {e["event"]: e for e in events}
    assert [e["event"] for e in events] == ["GET /tiles/{z}", "log", "render"]  # by start time
    span, log, failed = by_name["GET /tiles/{z}"], by_name["log"], by_name["render"]
    assert (span["type"], span["span_id"], span["parent_span_id"], span["user_id"]) == (
        "span",
        root_id,
        "",
        "user-9",
    )
    assert (failed["type"], failed["span_id"], failed["parent_span_id"]) == ("span", child_id, root_id)
    assert (failed["level"], failed["message"]) == ("error", "renderer crashed")
    assert 0 < failed["duration_ms"] <= span["duration_ms"]
    assert (log["type"], log["message"], log["level"], log["user_id"]) == (
        "log",
        "tile cache miss",
        "warning",
        "user-9",
    )
    assert log["properties"]["otel.span_id"] == root_id
    assert log["properties"]["tile.zoom"] == 12
    assert log["properties"]["telemetry.sdk.language"] == "python"

    page = reader.get(f"/traces/{trace_id}/").content.decode()
    assert page.count('class="span-bar span-normal"') == 1
    assert page.count('class="span-bar span-error"') == 1
    assert 'data-depth="1"><title>' in page and "span render: " in page


def test_a_default_batch_of_512_spans_over_1_mb_is_stored(portal, make_key):
    """The SDK's default BatchSpanProcessor (512 spans per export) and exporter (no compression): spans of
    ~2.5 KB (a SQL statement) make a ~1.3 MB export, which the exporter drops whole on a 413."""
    _, key = make_key(service="tiles-api", stage="prod")
    answers: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: answers.append(response.status_code))
    exporter = OTLPSpanExporter(
        endpoint=portal.url + "/otlp/v1/traces", headers={"Authorization": f"Bearer {key}"}, session=session
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "tiles-api"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracer = provider.get_tracer("tiles.db")
    statement = "SELECT " + ", ".join(f"tiles.column_{n}" for n in range(180)) + " FROM tiles WHERE z = %s"
    for n in range(512):
        with tracer.start_as_current_span("SELECT tiles", attributes={"db.statement": statement, "n": n}):
            pass
    provider.force_flush()
    provider.shutdown()

    assert answers == [200]
    assert RawEvent.objects.filter(service="tiles-api").count() == 512


@pytest.mark.parametrize(("key_state", "status"), [("wrong", 401), ("revoked", 403)])
def test_with_a_bad_key_the_exporters_fail_without_retrying_and_nothing_is_stored(
    portal, make_key, key_state, status
):
    api_key, key = make_key(service="tiles-api", stage="prod")
    if key_state == "revoked":
        service_key_revoke(api_key=api_key, actor=Actor.command("tests"))
    else:
        key = "swk_deadbeef_not-a-real-key"
    app = Instrumented(portal, key, service="tiles-api", stage="prod")

    with app.tracer.start_as_current_span("GET /tiles/{z}"):
        app.logger.emit(body="tile cache miss", severity_number=SeverityNumber.INFO)
    again = app.export_again()
    app.shutdown()

    assert again == (SpanExportResult.FAILURE, LogRecordExportResult.FAILURE)
    # Two exports each way, each answered once: 401 and 403 are not retried.
    assert [a.status_code for a in app.answers] == [status] * 4
    assert RawEvent.objects.count() == 0


def test_one_bad_record_in_a_batch_is_refused_by_name_and_the_rest_stored(portal, make_key):
    _, key = make_key(service="tiles-api", stage="prod")
    app = Instrumented(portal, key, service="tiles-api", stage="prod", batch=True)

    for body, timestamp in (("first", None), ("ancient", NINETEEN_NINETY), ("third", None)):
        app.logger.emit(body=body, timestamp=timestamp, severity_number=SeverityNumber.INFO)
    app.tracer.start_span("ancient span", start_time=NINETEEN_NINETY).end(
        end_time=NINETEEN_NINETY + 1_000_000
    )
    app.tracer.start_span("fine span").end()
    app.flush()
    app.shutdown()

    assert [a.status_code for a in app.answers] == [200, 200]  # a partial success is not retried
    by_path = {a.request.path_url: a for a in app.answers}
    logs = ExportLogsServiceResponse.FromString(by_path["/otlp/v1/logs"].content).partial_success
    spans = ExportTraceServiceResponse.FromString(by_path["/otlp/v1/traces"].content).partial_success
    assert (logs.rejected_log_records, spans.rejected_spans) == (1, 1)
    assert "log_records[1]: time_unix_nano: " in logs.error_message and "before 2000" in logs.error_message
    assert "spans[0]: start_time_unix_nano: " in spans.error_message
    assert sorted(RawEvent.objects.values_list("event", "message")) == [
        ("fine span", ""),
        ("log", "first"),
        ("log", "third"),
    ]


def test_with_the_database_down_the_exporter_hears_503_with_retry_after(start_portal):
    portal = start_portal(DATABASE_URL=f"postgres://skywatch:skywatch@127.0.0.1:{free_port()}/skywatch")
    # Retry-After (5 s) is longer than the export's time left: the exporter gives up after one answer.
    app = Instrumented(portal, "swk_0123abcd_whatever", service="tiles-api", stage="prod", timeout=3)

    with app.tracer.start_as_current_span("GET /tiles/{z}"):
        pass
    app.shutdown()

    [answer] = app.answers
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert answer.headers["Content-Type"] == PROTOBUF


def test_the_readmes_environment_settings_are_all_an_sdk_needs(portal, make_key, monkeypatch):
    _, key = make_key(service="tiles-api", stage="prod")
    for name, value in {
        "OTEL_EXPORTER_OTLP_ENDPOINT": portal.url + "/otlp",
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{key}",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_SERVICE_NAME": "tiles-api",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod",
    }.items():
        monkeypatch.setenv(name, value)
    tracer_provider = TracerProvider(resource=Resource.create())
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    logger_provider = LoggerProvider(resource=Resource.create())
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))

    with tracer_provider.get_tracer("tiles").start_as_current_span("GET /tiles/{z}"):
        logger_provider.get_logger("tiles").emit(body="tile served", severity_number=SeverityNumber.INFO)
    tracer_provider.shutdown()
    logger_provider.shutdown()

    assert sorted(RawEvent.objects.values_list("service", "stage", "type")) == [
        ("tiles-api", "prod", "log"),
        ("tiles-api", "prod", "span"),
    ]

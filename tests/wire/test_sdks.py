"""The real posthog-python and segment-analytics-python, unmodified, against the portal served by gunicorn on
loopback: what they send is stored once, counted in the series and found in the trail; a bad key or a bad
record reaches them the way they expect to hear of it."""

import logging
import uuid
from datetime import UTC, datetime

import pytest
import requests
from posthog import Posthog
from posthog import request as posthog_request
from segment.analytics import Client as SegmentClient
from segment.analytics import request as segment_request

from apps.accounts.actors import Actor
from apps.ingest.models import RawEvent
from apps.ingest.services import service_key_revoke
from observatory import correlation, requests_propagation
from tests.conftest import free_port
from tests.wire.conftest import series_total, trail, wait_until_processed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def answers():
    """Every HTTP answer the SDKs get, seen through requests' response hooks on their sessions."""
    seen: list[requests.Response] = []

    def record(response, *args, **kwargs):
        seen.append(response)

    sessions = [posthog_request._session, posthog_request._flags_session, segment_request._session]
    for session in sessions:
        session.hooks["response"].append(record)
    yield seen
    for session in sessions:
        session.hooks["response"].remove(record)


def posthog_sdk(portal, key, errors, **options) -> Posthog:
    return Posthog(
        key,
        host=portal.url + "/posthog",
        on_error=lambda error, batch: errors.append((error, batch)),
        **{"flush_interval": 0.1, **options},
    )


def segment_sdk(portal, key, errors, **options) -> SegmentClient:
    return SegmentClient(
        write_key=key,
        host=portal.url + "/segment",
        on_error=lambda error, batch: errors.append((error, batch)),
        **{"upload_interval": 0.1, **options},
    )


# --- posthog-python ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_posthog_python_events_are_stored_once_counted_and_in_the_trail(
    portal, make_key, reader, answers, gzip
):
    _, key = make_key(service="checkout", stage="prod")
    cid = f"ph-{uuid.uuid4()}"
    errors: list = []
    sdk = posthog_sdk(portal, key, errors, gzip=gzip)

    sent = [
        sdk.capture("basket_filled", distinct_id="user-42", properties={"items": n, "correlation_id": cid})
        for n in range(5)
    ]
    profile = sdk.set(distinct_id="user-42", properties={"plan": "pro"})
    sdk.flush()
    for n, event_id in enumerate(sent):  # a sender retrying the same events
        sdk.capture(
            "basket_filled",
            distinct_id="user-42",
            uuid=event_id,
            properties={"items": n, "correlation_id": cid},
        )
    sdk.flush()
    sdk.shutdown()

    assert errors == []
    assert [a.request.headers.get("Content-Encoding") for a in answers] == ["gzip" if gzip else None] * 2
    assert [a.json()["duplicates"] for a in answers] == [0, 5]
    stored = RawEvent.objects.filter(service="checkout")
    assert sorted(str(i) for i in stored.values_list("event_id", flat=True)) == sorted([*sent, profile])
    assert stored.get(event="$set").properties["$set"] == {"plan": "pro"}
    assert stored.get(event_id=sent[0]).properties["$lib"] == "posthog-python"
    wait_until_processed([*sent, profile])
    assert series_total(reader, event="basket_filled", service="checkout") == 5
    assert trail(reader, cid) == [("checkout", "prod", "user-42", cid, "basket_filled")] * 5


@pytest.mark.parametrize("key_state", ["wrong", "revoked"])
def test_posthog_python_with_a_bad_key_hears_401_and_nothing_is_stored(portal, make_key, key_state):
    api_key, key = make_key()
    if key_state == "revoked":
        service_key_revoke(api_key=api_key, actor=Actor.command("tests"))
    else:
        key = "swk_deadbeef_not-a-real-key"
    errors: list = []
    sdk = posthog_sdk(portal, key, errors)

    sdk.capture("basket_filled", distinct_id="user-42")
    sdk.flush()
    sdk.shutdown()

    [(error, batch)] = errors
    assert isinstance(error, posthog_request.APIError)
    assert error.status == 401
    assert ("revoked" if key_state == "revoked" else "Unknown API key") in error.message
    assert [event["event"] for event in batch] == ["basket_filled"]
    assert RawEvent.objects.count() == 0


def test_posthog_python_batch_with_one_bad_record_stores_the_rest_and_hears_of_the_one(
    portal, make_key, answers
):
    _, key = make_key()
    errors: list = []
    sdk = posthog_sdk(portal, key, errors, flush_at=3)

    sdk.capture("first", distinct_id="u1")
    sdk.capture("ancient", distinct_id="u1", timestamp=datetime(1990, 1, 1, tzinfo=UTC))
    sdk.capture("third", distinct_id="u1")
    sdk.flush()
    sdk.shutdown()

    assert errors == []  # a 200: the SDK does not retry the good events
    [answer] = [a for a in answers if a.request.url.endswith("/posthog/batch/")]
    body = answer.json()
    assert (answer.status_code, body["status"], body["accepted"]) == (200, 1, 2)
    [refused] = body["rejected"]
    assert refused["index"] == 1 and "before 2000-01-01" in refused["errors"]["timestamp"]
    assert set(RawEvent.objects.values_list("event", flat=True)) == {"first", "third"}


def test_posthog_python_default_batches_over_1_mb_are_stored(portal, make_key):
    """posthog-python's defaults (no gzip, 100 events, batches of up to 5 MB) over the 1 MB of /api/v1/batch:
    every event is well within 32 KB, and the SDK gives a batch up on a 413 (it does not split it)."""
    _, key = make_key(service="checkout", stage="prod")
    errors: list = []
    sdk = posthog_sdk(portal, key, errors)
    stack = "x" * 12_000  # 100 events of ~12 KB: a ~1.2 MB batch
    for n in range(100):
        sdk.capture("$exception", distinct_id=f"user-{n}", properties={"$exception_stack": stack, "n": n})
    sdk.flush()
    sdk.shutdown()

    assert errors == []
    assert RawEvent.objects.filter(service="checkout").count() == 100


@pytest.fixture
def posthog_log():
    """What the posthog SDK logs at warning or above (its logger does not reach the root logger)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("posthog")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.filterwarnings(
    "ignore:`get_feature_flag` is deprecated", "ignore:`feature_enabled` is deprecated"
)
def test_posthog_python_feature_flags_are_none_without_an_error_and_events_still_land(
    portal, make_key, answers, posthog_log
):
    """The portal has no flags: /flags/ answers so (it was a 404, which the SDK logged on every call)."""
    _, key = make_key(service="checkout", stage="prod")
    errors: list = []
    sdk = posthog_sdk(portal, key, errors)

    sent = sdk.capture("basket_filled", distinct_id="user-42")
    flag = sdk.get_feature_flag("new-checkout", "user-42")
    enabled = sdk.feature_enabled("new-checkout", "user-42")
    everything = sdk.get_all_flags("user-42")
    evaluated = sdk.evaluate_flags("user-42")  # what the SDK recommends instead of the calls above
    read = (evaluated.get_flag("new-checkout"), evaluated.is_enabled("new-checkout"))
    sdk.flush()
    sdk.shutdown()

    # As against a PostHog project without the flag: None (not found), which reads as off.
    assert (flag, enabled, everything) == (None, None, {})
    assert read == (None, False)
    assert errors == []
    assert [r.getMessage() for r in posthog_log] == []
    asked = [a for a in answers if "/posthog/flags/" in a.request.url]
    assert asked and {a.status_code for a in asked} == {200}
    events = dict(RawEvent.objects.filter(service="checkout").values_list("event", "event_id"))
    assert str(events["basket_filled"]) == sent
    # The SDK reports each flag it was asked about, as it does against PostHog.
    assert events.keys() <= {"basket_filled", "$feature_flag_called"}


@pytest.mark.filterwarnings("ignore:`get_feature_flag` is deprecated")
def test_posthog_python_with_a_bad_key_hears_401_on_flags_as_from_posthog(portal, make_key, answers):
    make_key()
    sdk = posthog_sdk(portal, "swk_deadbeef_not-a-real-key", [])

    flag = sdk.get_feature_flag("new-checkout", "user-42")
    sdk.shutdown()

    assert flag is None
    [answer] = [a for a in answers if "/posthog/flags/" in a.request.url]
    assert answer.status_code == 401 and "Unknown API key" in answer.json()["detail"]


def test_posthog_python_batches_closed_at_its_5_mb_cap_are_stored(portal, make_key):
    """Events well within 32 KB, with flush_at raised above the default 100: the SDK sends a batch when it
    reaches its size cap instead, and closes it only past 5 MB (consumer.py BATCH_SIZE_LIMIT, checked after
    appending): the wire limit leaves room for that."""
    _, key = make_key(service="checkout", stage="prod")
    errors: list = []
    sdk = posthog_sdk(portal, key, errors, flush_at=1000, flush_interval=5)
    stack = "x" * 12_000
    for n in range(450):
        sdk.capture("$exception", distinct_id=f"user-{n}", properties={"$exception_stack": stack, "n": n})
    sdk.flush()
    sdk.shutdown()

    assert errors == []
    assert RawEvent.objects.filter(service="checkout").count() == 450


# --- segment-analytics-python ----------------------------------------------------------------------------


def test_segment_messages_of_every_type_are_stored_once_counted_and_in_the_trail(portal, make_key, reader):
    _, key = make_key(service="billing", stage="staging")
    cid = f"seg-{uuid.uuid4()}"
    errors: list = []
    sdk = segment_sdk(portal, key, errors, sync_mode=True)

    # A service whose requests carry its correlation ID (observatory's propagation), sending in sync mode.
    requests_propagation.install()
    try:
        with correlation.use(cid):
            sent = [
                sdk.track(user_id="user-7", event="Invoice Paid", properties={"amount": 12})[1],
                sdk.identify(user_id="user-7", traits={"plan": "pro"})[1],
                sdk.page(user_id="user-7", name="Pricing", properties={"path": "/pricing"})[1],
                sdk.screen(user_id="user-7", name="Home")[1],
                sdk.group(user_id="user-7", group_id="acme", traits={"size": 12})[1],
                sdk.alias(previous_id="anon-3", user_id="user-7")[1],
            ]
            sdk.track(  # the same message again, as after a lost answer
                user_id="user-7",
                event="Invoice Paid",
                properties={"amount": 12},
                message_id=sent[0]["messageId"],
            )
    finally:
        requests_propagation.uninstall()

    assert errors == []
    ids = [message["messageId"] for message in sent]
    stored = {str(e.event_id): e for e in RawEvent.objects.filter(service="billing")}
    assert sorted(stored) == sorted(ids)
    assert [stored[i].event for i in ids] == ["Invoice Paid", "identify", "page", "screen", "group", "alias"]
    assert stored[ids[1]].properties["traits"] == {"plan": "pro"}
    assert stored[ids[2]].properties["name"] == "Pricing"
    assert stored[ids[0]].properties["context"]["library"]["name"] == "analytics-python"
    wait_until_processed(ids)
    assert series_total(reader, event="Invoice Paid", service="billing") == 1
    assert sorted(trail(reader, cid)) == sorted(
        ("billing", "staging", "user-7", cid, name)
        for name in ("Invoice Paid", "identify", "page", "screen", "group", "alias")
    )


@pytest.mark.parametrize(("key_state", "status"), [("wrong", 401), ("revoked", 403)])
def test_segment_with_a_bad_key_hears_its_error_and_nothing_is_stored(portal, make_key, key_state, status):
    api_key, key = make_key()
    if key_state == "revoked":
        service_key_revoke(api_key=api_key, actor=Actor.command("tests"))
    else:
        key = "swk_deadbeef_not-a-real-key"
    errors: list = []
    sdk = segment_sdk(portal, key, errors)

    sdk.track(user_id="user-7", event="Invoice Paid")
    sdk.flush()
    sdk.join()

    [(error, batch)] = errors
    assert isinstance(error, segment_request.APIError)
    assert error.status == status
    assert error.code in ("authentication_failed", "permission_denied")
    assert [message["event"] for message in batch] == ["Invoice Paid"]
    assert RawEvent.objects.count() == 0


def test_segment_batch_with_one_bad_record_stores_the_rest_and_hears_of_the_one(portal, make_key, answers):
    _, key = make_key()
    errors: list = []
    sdk = segment_sdk(portal, key, errors, upload_size=3, upload_interval=2)

    sdk.track(user_id="u1", event="first")
    sdk.track(user_id="u1", event="ancient", timestamp=datetime(1990, 1, 1, tzinfo=UTC))
    sdk.identify(user_id="u1", traits={"plan": "pro"})
    sdk.flush()
    sdk.join()

    assert errors == []
    [answer] = [a for a in answers if a.request.url.endswith("/segment/v1/batch")]
    body = answer.json()
    assert (answer.status_code, body["success"], body["accepted"]) == (200, True, 2)
    [refused] = body["rejected"]
    assert refused["index"] == 1 and "before 2000-01-01" in refused["errors"]["timestamp"]
    assert set(RawEvent.objects.values_list("event", flat=True)) == {"first", "identify"}


# --- both, and the server's side of the body --------------------------------------------------------------


def test_with_the_database_down_both_sdks_hear_503_with_retry_after(start_portal):
    portal = start_portal(DATABASE_URL=f"postgres://skywatch:skywatch@127.0.0.1:{free_port()}/skywatch")
    errors: list = []
    posthog = posthog_sdk(portal, "swk_0123abcd_whatever", errors, max_retries=0)
    segment = segment_sdk(portal, "swk_0123abcd_whatever", errors, sync_mode=True)

    posthog.capture("basket_filled", distinct_id="user-42")
    posthog.flush()
    posthog.shutdown()
    with pytest.raises(segment_request.APIError) as refused:
        segment.track(user_id="user-7", event="Invoice Paid")

    [(error, _batch)] = errors
    assert (error.status, error.retry_after) == (503, 5.0)
    assert refused.value.status == 503
    assert refused.value.response.headers["Retry-After"] == "5"


def test_a_chunked_body_without_content_length_is_read_whole_through_gunicorn(portal, make_key):
    _, key = make_key()
    body = b'{"api_key": "%s", "batch": [{"event": "chunked", "distinct_id": "u1"}]}' % key.encode()

    def chunks():  # a generator makes requests send Transfer-Encoding: chunked and no Content-Length
        for start in range(0, len(body), 16):
            yield body[start : start + 16]

    response = requests.post(
        portal.url + "/posthog/batch/",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )

    assert "Content-Length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert RawEvent.objects.get().event == "chunked"

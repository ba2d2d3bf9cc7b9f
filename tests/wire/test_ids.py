"""Event IDs from foreign SDKs: UUIDs kept, anything else turned into the same UUID on every re-send."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from apps.wire.ids import event_id_for, uuid5_text


def test_a_uuid_in_any_spelling_is_kept_in_canonical_form():
    given_id = uuid.uuid4()

    for spelling in (str(given_id), str(given_id).upper(), given_id.hex, f"urn:uuid:{given_id}"):
        assert event_id_for(spelling, service="svc") == (str(given_id), False)


def test_no_id_is_left_to_the_server():
    assert event_id_for(None, service="svc") == (None, False)
    assert event_id_for("", service="svc") == (None, False)


def test_what_conform_must_refuse_is_passed_on_as_sent():
    for value in (True, 1.5, {"a": 1}, [1]):
        assert event_id_for(value, service="svc") == (value, False)


@given(text=st.text(min_size=1).filter(lambda t: not _is_uuid(t)), service=st.sampled_from(["a", "b"]))
def test_free_text_becomes_a_stable_uuid_of_the_service_and_the_id(text, service):
    derived, was_derived = event_id_for(text, service=service)

    assert was_derived
    assert uuid.UUID(derived).version == 5
    assert event_id_for(text, service=service) == (derived, True)
    assert event_id_for(text, service="other-" + service)[0] != derived


def test_a_whole_number_is_derived_like_its_text():
    assert event_id_for(77, service="svc") == event_id_for("77", service="svc")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@given(name=st.text(), namespace=st.uuids())
def test_uuid5_text_is_the_standard_librarys_uuid5(name, namespace):
    # Stored event ids are derived with it: a different answer would store every re-sent event again.
    assert uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))

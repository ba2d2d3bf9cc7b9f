"""One run at a time (apps/common/advisory.py): a lock whose release fails still ends, with its session."""

import pytest
from django.db import DataError, connection, transaction

from apps.common.advisory import exclusive
from tests.conftest import in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the embedded mode has one process"),
]

KEY = 0x54455354  # "TEST"


def taken_elsewhere() -> bool:
    """Return whether another session can take the lock now (and give it back)."""
    took: list[bool] = []

    def other() -> None:
        try:
            with exclusive(KEY, refused=RuntimeError("held")):
                took.append(True)
        except RuntimeError:
            took.append(False)

    in_thread(other).join(10)
    return took == [True]


def test_a_lock_left_in_a_failed_transaction_ends_with_its_session():
    with transaction.atomic():  # a caller's own transaction, as a task may hold
        with exclusive(KEY, refused=RuntimeError("held")):
            assert not taken_elsewhere()
            try:
                with transaction.atomic(savepoint=False), connection.cursor() as cursor:
                    cursor.execute("SELECT 1 / 0")  # the transaction fails: the unlock cannot run in it
            except DataError:
                pass

    assert taken_elsewhere()

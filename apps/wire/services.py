"""Store a foreign batch: map each event with its format's `to_item`, then one `events_ingest` call.

Refusals from the mapping and from conform come back as one list, indexed by position in what the sender
sent and named with the sender's field names.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from apps.ingest.models import ApiKey
from apps.ingest.services import IngestResult, events_ingest

from .items import Refused


def foreign_events_ingest(
    *,
    events: list[Any],
    to_item: Callable[[Any], Any],
    wire_names: Mapping[str, str],
    api_key: ApiKey,
    received_at: datetime,
    sent_at: datetime | None = None,
    header_correlation_id: str = "",
    ingest_node: str = "",
    json_ready: bool = False,
) -> IngestResult:
    """Conform and store the events a foreign SDK sent; valid ones are stored even when others are refused.

    `json_ready`: `to_item` makes items of valid text, finite numbers and string keys only (OTLP's, from
    protobuf messages), so their msgspec text spares conform its structure walk, as a strictly decoded
    JSON body does.
    """
    items: list[Any] = []
    positions: list[int] = []
    rejected: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        try:
            items.append(to_item(event))
        except Refused as refused:
            rejected.append({"index": index, "errors": refused.errors})
            continue
        positions.append(index)
    result = events_ingest(
        items=items,
        raws=[msgspec.json.encode(item) for item in items] if json_ready else None,
        api_key=api_key,
        received_at=received_at,
        sent_at=sent_at,
        header_correlation_id=header_correlation_id,
        ingest_node=ingest_node,
    )
    rejected.extend(
        {"index": positions[item["index"]], "errors": _renamed(item["errors"], wire_names)}
        for item in result.rejected
    )
    result.rejected = sorted(rejected, key=lambda item: item["index"])
    return result


def _renamed(errors: Mapping[str, str], wire_names: Mapping[str, str]) -> dict[str, str]:
    return {wire_names.get(field, field): message for field, message in errors.items()}

"""Model instances rebuilt from cached plain values, without a query."""

from typing import Any

from django.db import DEFAULT_DB_ALIAS


def partial_instance(model: Any, values: dict[str, Any]) -> Any:
    """Return an instance of `model` as if loaded with only these fields (the others load when read)."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(DEFAULT_DB_ALIAS, names, [values[name] for name in names])

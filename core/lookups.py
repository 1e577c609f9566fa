"""``field__any=values``: membership in a list passed as one array parameter.

``field__in=[…]`` writes one placeholder per value, and with thousands of values (an evaluation cycle filters by
every live release, every guardrail and every look's timestamp) building and parsing that statement cost more
than PostgreSQL took to run it. ``= ANY(%s)`` sends the list as a single array: the statement stays the same size
whatever the count, so its cost does not grow with the fleet. On other databases it is ``IN`` as usual.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Field, ForeignObject, Lookup


class AnyOf(Lookup):  # type: ignore[type-arg]
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self) -> list[Any]:
        return list(self.rhs)

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection, prepared=False) for value in self.rhs]
        if connection.vendor == "postgresql":
            # Cast to the column's own type: psycopg types a list of small ints as smallint[], and a comparison
            # across types is not one PostgreSQL hashes, so each row would scan the whole array.
            return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", [*lhs_params, values]
        if not values:
            return "1 = 0", list(lhs_params)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]


# Relations keep a lookup registry of their own (``release_id__any`` is looked up on the ForeignKey).
Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)

# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Which models hold data of their own in the database, for the dump and the load alike.

A managed, concrete model does. An unmanaged one (``managed = False``) does
when its table is a base table the database has (a legacy table the
application reads and writes): the dump takes it, and the load empties it
only when the archive holds it. Not a view or a materialized view, whose
rows come from other tables and cannot be written; not a foreign table,
whose rows live on another server; not a table that is not there.
"""

# Base tables (plain and partitioned) and views of the search path, as
# PostgreSQL lists them; a foreign table ('f') is neither.
RELATIONS_SQL = (
    "SELECT c.relname, c.relkind IN ('r', 'p') FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p', 'v', 'm') AND pg_table_is_visible(c.oid)"
)


def relations(using):
    """({base table names}, {view names}) in the database's search path."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute(RELATIONS_SQL)
        rows = cursor.fetchall()
    return {name for name, base in rows if base}, {name for name, base in rows if not base}


def holds_data(model, base_tables, views):
    """Whether the model's rows are its own data (see the module docstring)."""
    meta = model._meta
    if meta.proxy or meta.db_table in views:
        return False
    return meta.managed or meta.db_table in base_tables

# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Which models hold data of their own in the database, for the dump and the load alike.

A managed, concrete model does. An unmanaged one (``managed = False``) does
when its table is a base table the database has (a legacy table the
application reads and writes); not when it is a view, whose rows come from
other tables and cannot be written, nor when its table is not there at all.
"""


def relations(using):
    """({base table names}, {view names}) in the database's search path."""
    from django.db import connections

    connection = connections[using]
    with connection.cursor() as cursor:
        found = connection.introspection.get_table_list(cursor)
    return (
        {info.name for info in found if info.type == "t"},
        {info.name for info in found if info.type == "v"},
    )


def holds_data(model, base_tables, views):
    """Whether the model's rows are its own data (see the module docstring)."""
    meta = model._meta
    if meta.proxy or meta.db_table in views:
        return False
    return meta.managed or meta.db_table in base_tables

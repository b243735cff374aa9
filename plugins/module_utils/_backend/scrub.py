# Private to the edms.backup collection: no compatibility promise to anyone else.
"""A database error's text without the row data PostgreSQL puts in it (scrub).

A DETAIL line is kept only when it names a key whose columns are ids
(named id or ending in _id) and whose values are integers or UUIDs, in one
of the wordings of a key collision or a missing reference: what an operator
needs to find either. Any other DETAIL
("Failing row contains (...)": every column of the row, a user's password
hash among them; a key of emails; an exclusion constraint's ranges) is
replaced, with the lines that continue it (a row's text may hold line
breaks), up to the next line PostgreSQL, pg_restore or a traceback starts.
A COPY's CONTEXT line (pg_restore quotes the line it failed on) is cut after
the line number. The rollback runs it on pg_restore's output; the load
builds its messages from psycopg's fields instead (loader.describe) and
uses it for the rest. English server messages are what it knows: a DETAIL
in another language is hidden whole, but a DETAIL tag in another language
is not recognised (lc_messages of the demo's server is C).
"""

import re

KEY_DETAIL = re.compile(
    r'Key \(([\w", ]+)\)=\(([\w, -]*)\) (already exists|is not present in table "[^"\n]*"'
    r'|is still referenced from table "[^"\n]*")\.?[ \t]*$'
)
COPY_LINE = re.compile(r"(CONTEXT:\s+COPY [^,\n]+, line \d+)[^\n]*")
STARTS = re.compile(
    r"\s*(?:(?:HINT|CONTEXT|STATEMENT|WHERE|LOCATION|QUERY|ERROR|FATAL|PANIC|WARNING|NOTICE"
    r"|LINE \d+):|pg_restore: |Traceback |File \"|The above exception|During handling)"
)
HIDDEN = "DETAIL:  not shown (it may quote the row's data)"


def ids_only(columns):
    names = [name.strip().strip('"') for name in columns.split(",")]
    return all(name == "id" or name.endswith("_id") for name in names)


KEY_VALUE = re.compile(r"^(-?\d+|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})$")


def kept_detail(detail, columns_ok=ids_only):
    # detail: the text after "DETAIL:"; kept only if it is a key of ids whose
    # values are integers or UUIDs.
    match = KEY_DETAIL.match(detail.strip())
    return (
        bool(match)
        and columns_ok(match.group(1))
        and all(KEY_VALUE.match(v.strip()) for v in match.group(2).split(","))
    )


def scrub(text):
    out, hiding = [], False
    for line in re.sub(r"(?<=\S)[ \t]*(DETAIL:)", r"\n\1", text).splitlines(True):
        if hiding and not STARTS.match(line):
            continue  # the hidden DETAIL goes on
        hiding = False
        stripped = line.lstrip()
        if stripped.startswith("DETAIL:"):
            if kept_detail(stripped[len("DETAIL:") :]):
                out.append(line)
            else:
                end = "\n" if line.endswith("\n") else ""
                out.append(line[: len(line) - len(stripped)] + HIDDEN + end)
                hiding = True
            continue
        out.append(COPY_LINE.sub(r"\1 (the line is not shown)", line))
    return "".join(out)

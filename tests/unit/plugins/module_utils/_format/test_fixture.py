import io
import json
import uuid

import pytest
from ansible_collections.edms.backup.plugins.module_utils._format.fixture import (
    FixtureAnalysis,
    FixtureError,
    iter_fixture,
)

ODD_OBJECTS = [
    {"model": "a.b", "pk": 1, "fields": {"text": 'a ] in a string, and a " quote', "n": []}},
    {"model": "a.b", "pk": "x", "fields": {"nested": [[1, [2, [3]]], {"k": [{"]": "["}]}]}},
    {"model": "a.b", "pk": 2, "fields": {"unicode": "Zürich ✓ \U0001f600 \u0000 \\ /"}},
    {"model": "a.b", "pk": 3, "fields": {"numbers": [0, -1.5e10, 12345678901234567890, True]}},
    {"model": "a.b", "pk": 4, "fields": {"empty": {}, "null": None, "long": "y" * 5000}},
]


def one_per_line(objects):
    return "[\n" + ",\n".join(json.dumps(obj, ensure_ascii=False) for obj in objects) + "\n]\n"


LAYOUTS = {
    "one per line": one_per_line(ODD_OBJECTS),
    "indent=2": json.dumps(ODD_OBJECTS, indent=2),
    "one line": json.dumps(ODD_OBJECTS),
    "one line, no spaces": json.dumps(ODD_OBJECTS, separators=(",", ":")),
    "ascii escapes": json.dumps(ODD_OBJECTS, ensure_ascii=True),
    "odd whitespace": "\r\n\t [ \r\n"
    + " \t,\r\n  ".join(json.dumps(obj, indent="\t") for obj in ODD_OBJECTS)
    + "\n\n ]  \r\n\t",
}


def parse(text, chunk_size=1 << 20):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return list(iter_fixture(io.BytesIO(data), chunk_size=chunk_size))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_every_layout_and_chunk_size_gives_the_same_objects(layout, chunk_size):
    assert parse(LAYOUTS[layout], chunk_size) == ODD_OBJECTS


@pytest.mark.parametrize("text", ["[]", " [ ] ", "[\n]\n"])
def test_an_empty_array_has_no_objects(text):
    assert parse(text, chunk_size=1) == []


def test_numbers_cut_by_a_chunk_boundary_are_read_whole():
    assert parse("[1234567,89,-0.25e3]", chunk_size=1) == [1234567, 89, -250.0]


def test_memory_holds_one_object_and_one_chunk_not_the_file():
    objects = [{"model": "a.b", "pk": i, "fields": {"x": "z" * (i % 50)}} for i in range(3000)]
    data = one_per_line(objects).encode()
    chunk = 256
    stream = io.BytesIO(data)
    ends, end = [], 2  # "[\n"
    for obj in objects:
        end += len(json.dumps(obj)) + 2
        ends.append(end)
    read = 0
    for index, obj in enumerate(iter_fixture(stream, chunk_size=chunk)):
        assert stream.tell() <= ends[index] + chunk
        assert obj == objects[index]
        read += 1
    assert read == len(objects)
    assert len(data) > 100 * chunk


def test_an_object_much_larger_than_the_chunk_is_read():
    big = {"model": "a.b", "pk": 1, "fields": {"blob": "q" * 200_000}}
    assert parse(one_per_line([big, big]), chunk_size=16) == [big, big]


def many_objects(count):
    # Sizes from a few bytes to far more than a chunk, newlines and commas
    # inside strings, non-ASCII text: one per line, they are decoded in batches.
    return [
        {
            "model": "a.b",
            "pk": i,
            "fields": {"text": ",\n],[ é✓" * (i % 7) + "x" * (40_000 if i % 500 == 7 else i % 90)},
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("chunk_size", [64, 1000, 1 << 20])
def test_a_long_fixture_one_per_line_gives_every_object(chunk_size):
    objects = many_objects(3000)
    assert parse(one_per_line(objects), chunk_size) == objects


@pytest.mark.parametrize("chunk_size", [64, 1000, 1 << 20])
def test_invalid_json_deep_in_a_long_fixture_is_named_exactly(chunk_size):
    objects = many_objects(3000)
    text = one_per_line(objects)
    start = text.index('{"model": "a.b", "pk": 2345,')
    bad = (
        text[:start] + '{"model": "a.b", "pk": tru, "fields": {}}' + text[text.index("\n", start) :]
    )
    err = error_of(bad, chunk_size)
    assert err.index == 2345
    assert err.offset == len(text[:start].encode()) + len('{"model": "a.b", "pk": ')
    assert str(err).startswith("object index 2345 is not valid JSON")


def error_of(text, chunk_size=1 << 20):
    with pytest.raises(FixtureError) as err:
        parse(text, chunk_size)
    return err.value


@pytest.mark.parametrize("chunk_size", [5, 1 << 20])
def test_a_fixture_cut_inside_an_object_is_truncated(chunk_size):
    text = one_per_line(ODD_OBJECTS[:2])
    err = error_of(text[: text.index("nested") + 20], chunk_size)
    assert "ends inside object index 1" in str(err)
    assert "truncated" in str(err)
    assert err.index == 1


def test_a_fixture_without_the_closing_bracket_is_truncated():
    text = one_per_line(ODD_OBJECTS[:2]).rstrip()[:-1]
    err = error_of(text, chunk_size=8)
    assert "after object index 1" in str(err)
    assert "without the closing ']'" in str(err)
    assert err.offset == len(text.encode())


def test_data_after_the_closing_bracket_is_refused_with_its_offset():
    err = error_of('[{"model": "a.b", "pk": 1, "fields": {}}]\n] x')
    assert str(err) == "unexpected data after the closing ']' at byte offset 42"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the fixture is empty"),
        ("  \n", "the fixture is empty"),
        ('{"model": "a.b"}', "not a JSON array: it starts with '{' at byte offset 0"),
        ("\n 3", "not a JSON array: it starts with '3' at byte offset 2"),
    ],
)
def test_a_fixture_that_is_not_an_array_is_refused(text, message):
    assert message in str(error_of(text))


def test_invalid_json_names_the_object_index_and_the_byte_offset():
    text = '[\n{"pk": 1},\n{"pk": "é", "x": tru},\n{"pk": 3}\n]'
    err = error_of(text, chunk_size=4)
    assert err.index == 1
    assert err.offset == text.encode().index(b"tru}")
    assert str(err) == (
        f"object index 1 is not valid JSON at byte offset {err.offset}: Expecting value"
    )


@pytest.mark.parametrize(
    ("text", "found"),
    [('[{"a": 1} {"b": 2}]', "'{'"), ('[{"a": 1};]', "';'")],
)
def test_a_missing_comma_is_named(text, found):
    assert str(error_of(text)).startswith("expected ',' or ']' after object index 0")
    assert str(error_of(text)).endswith(f"found {found}")


def test_a_trailing_comma_is_invalid():
    assert "object index 1 is not valid JSON" in str(error_of('[{"a": 1},\n]'))


def test_bytes_that_are_not_utf8_are_refused_with_their_offset():
    err = error_of(b'[{"a": "\xff"}]', chunk_size=3)
    assert str(err) == "the fixture is not UTF-8 text at byte offset 8"


# FixtureAnalysis

USER = "users.user"
DOCUMENT = "documents.document"
WORKFLOW = "workflows.workflow"
RELATIONS = {
    DOCUMENT: {
        "owner": {"model": USER, "many": False},
        "document_type": {"model": "documents.documenttype", "many": False},
        "parent": {"model": DOCUMENT, "many": False},
    },
    WORKFLOW: {
        "document": {"model": DOCUMENT, "many": False},
        "participants": {"model": USER, "many": True},
        "group": {"model": "auth.group", "many": False},
    },
    "audit.audittrail": {"content_type": {"model": "contenttypes.contenttype", "many": False}},
}
NATURAL_KEYS = {USER: ["username"], "documents.documenttype": ["code"]}


def analyse(objects, **options):
    options.setdefault("relations", RELATIONS)
    options.setdefault("natural_keys", NATURAL_KEYS)
    options.setdefault("recreated_models", ["contenttypes.contenttype", "auth.permission"])
    analysis = FixtureAnalysis(**options)
    for obj in objects:
        analysis.add(obj)
    return analysis.report()


def user(pk, username):
    return {"model": "Users.User", "pk": pk, "fields": {"username": username}}


def doc(pk, **fields):
    return {"model": DOCUMENT, "pk": pk, "fields": fields}


def workflow(pk, **fields):
    return {"model": WORKFLOW, "pk": pk, "fields": fields}


def test_counts_are_per_lower_case_label():
    report = analyse([user(1, "a"), user(2, "b"), doc("d1")])
    assert report["objects"] == 3
    assert report["counts"] == {USER: 2, DOCUMENT: 1}


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ([1, 2], "is an array, not an object"),
        ("text", "is a string, not an object"),
        ({"pk": 1, "fields": {}}, "has no 'model'"),
        ({"model": "a.b", "fields": {}}, "has no 'pk'"),
        ({"model": "a.b", "pk": 1}, "has no 'fields'"),
        ({"model": "a.b"}, "has no 'pk' and no 'fields'"),
        ({"model": "ab", "pk": 1, "fields": {}}, "has model 'ab', which is not an"),
        ({"model": "a.b", "pk": None, "fields": {}}, "has a null primary key"),
        ({"model": "a.b", "pk": 1, "fields": [1]}, "has fields that are an array"),
    ],
)
def test_malformed_objects_are_named_with_their_index(obj, problem):
    report = analyse([user(1, "a"), obj])
    assert report["structure"]["count"] == 1
    error = report["structure"]["errors"][0]
    assert error["index"] == 1
    assert error["problem"].startswith(f"object index 1 {problem}")
    assert report["counts"] == {USER: 1}


def test_duplicate_primary_keys_are_found_per_model():
    uid = str(uuid.UUID(int=0xABCDEF))
    report = analyse(
        [user(1, "a"), user(2, "b"), user("1", "c"), doc(1), doc(uid), doc(uid.upper()), doc(uid)]
    )
    assert report["duplicates"]["count"] == 2
    assert report["duplicates"]["items"] == [
        {"index": 2, "model": USER, "pk": "1"},
        {"index": 6, "model": DOCUMENT, "pk": uid},
    ]


def test_duplicates_among_integer_keys_out_of_order():
    pks = [*range(1, 1000), 5000, 3, 4000, 10, 4000, 5001, 5000]
    report = analyse([user(pk, f"u{pk}") for pk in pks])
    assert [d["pk"] for d in report["duplicates"]["items"]] == [3, 10, 4000, 5000]


def version(pk):
    # A model that no relation points to: its text keys, while in order, are
    # kept in a flat run rather than the table.
    return {"model": "documents.documentversion", "pk": pk, "fields": {}}


@pytest.mark.parametrize("relations", [RELATIONS, None])
def test_duplicate_text_keys_of_an_unreferenced_model_are_found_in_and_out_of_order(relations):
    uids = [str(uuid.UUID(int=i * 7919)) for i in range(1, 2001)]
    ordered = sorted(uids)
    pks = [*ordered, ordered[-1], ordered[5], "zzz", ordered[1999], ordered[7], "zzz", "aaa"]
    report = analyse([version(pk) for pk in pks], relations=relations)
    found = [(d["index"], d["pk"]) for d in report["duplicates"]["items"]]
    assert found == [
        (2000, ordered[-1]),
        (2001, ordered[5]),
        (2003, ordered[1999]),
        (2004, ordered[7]),
        (2005, "zzz"),
    ]
    assert report["duplicates"]["count"] == 5


def test_ordered_text_keys_of_an_unreferenced_model_have_no_false_duplicates():
    uids = sorted(str(uuid.UUID(int=i * 7919)) for i in range(1, 3001))
    report = analyse([version(pk) for pk in uids] + [version(pk) for pk in ("a", "b", "c")])
    assert report["duplicates"]["count"] == 0
    assert report["counts"] == {"documents.documentversion": 3003}


def test_text_keys_of_a_referenced_model_resolve_whatever_their_order():
    uids = sorted(str(uuid.UUID(int=i * 7919)) for i in range(1, 501))
    report = analyse(
        [*(doc(uid) for uid in uids), workflow(1, document=uids[0]), workflow(2, document="x")]
    )
    assert report["references"]["resolved"] == 1
    assert report["references"]["dangling"] == 1


def test_many_distinct_keys_have_no_false_duplicates_and_all_resolve():
    uids = [str(uuid.UUID(int=i * 7919)) for i in range(1, 6001)]
    docs = [doc(uid) for uid in uids]
    refs = [workflow(i, document=uid) for i, uid in enumerate(uids, 1)]
    report = analyse([*docs, *refs, doc(uids[4321])])
    assert report["duplicates"]["count"] == 1
    assert report["references"]["resolved"] == 6000
    assert report["references"]["dangling"] == 0


def test_references_by_pk_and_natural_key_resolve_in_any_order():
    objects = [
        workflow(1, document="d1", participants=[["alice"], ["bob"]]),  # forward references
        user(1, "alice"),
        user("2", "bob"),
        {"model": "documents.documenttype", "pk": 9, "fields": {"code": "SOP"}},
        doc("d1", owner=["alice"], document_type=["SOP"], parent=None),
        doc("d2", owner=2, parent="d1"),
    ]
    refs = analyse(objects)["references"]
    assert refs["checkable"]
    assert (refs["checked"], refs["resolved"], refs["dangling"], refs["null"]) == (7, 7, 0, 1)


def test_a_reference_to_a_recreated_model_is_counted_apart():
    objects = [{"model": "audit.audittrail", "pk": 1, "fields": {"content_type": ["a", "b"]}}]
    refs = analyse(objects)["references"]
    assert (refs["checked"], refs["recreated"], refs["resolved"], refs["dangling"]) == (1, 1, 0, 0)


def test_dangling_references_are_listed_with_where_they_are():
    objects = [
        user(1, "alice"),
        doc("d1", owner=2),
        doc("d2", owner=["carol"]),
        workflow(1, document="d9", participants=[["alice"], ["dave"]]),
    ]
    refs = analyse(objects)["references"]
    assert refs["dangling"] == 4
    assert [
        (d["index"], d["model"], d["pk"], d["field"], d["value"]) for d in refs["dangling_items"]
    ] == [
        (1, DOCUMENT, "d1", "owner", 2),
        (2, DOCUMENT, "d2", "owner", ["carol"]),
        (3, WORKFLOW, 1, "document", "d9"),
        (3, WORKFLOW, 1, "participants", ["dave"]),
    ]
    assert refs["resolved"] == 1
    assert refs["not_checkable"] == 0


def test_dangling_lists_are_bounded_but_counted():
    objects = [doc(f"d{i}", owner=i) for i in range(10)]
    refs = analyse(objects, limit=3)["references"]
    assert refs["dangling"] == 10
    assert len(refs["dangling_items"]) == 3


def test_a_natural_key_to_a_model_without_one_in_metadata_is_not_checkable():
    refs = analyse([workflow(1, group=["editors"])])["references"]
    assert refs["not_checkable"] == 1
    assert refs["not_checkable_models"] == ["auth.group"]
    assert refs["dangling"] == 0
    assert refs["resolved"] == 0


def test_without_relations_references_are_not_checkable():
    refs = analyse([doc("d1", owner=5)], relations=None)["references"]
    assert refs == {
        "checkable": False,
        "reason": "the metadata does not say which fields are references",
    }


def test_file_fields_are_looked_up_and_orphans_counted():
    media = {"docs/a.bin", "docs/b.bin", "docs/orphan.bin"}
    objects = [
        doc("d1", file="docs/a.bin"),
        doc("d2", file="docs/b.bin"),
        doc("d3", file=""),
        doc("d4", file="docs/missing.bin"),
        doc("d5", file="docs/a.bin"),
    ]
    files = analyse(objects, file_fields={DOCUMENT: ["file"]}, media_files=media)["files"]
    assert (files["checked"], files["missing"], files["orphans"]) == (4, 1, 1)
    assert files["missing_items"] == [
        {"index": 3, "model": DOCUMENT, "pk": "d4", "field": "file", "value": "docs/missing.bin"}
    ]
    assert files["orphan_items"] == ["docs/orphan.bin"]


def test_without_file_fields_files_are_not_checkable():
    files = analyse([doc("d1", file="x")], media_files=set())["files"]
    assert files == {"checkable": False, "reason": "the metadata does not name the file fields"}


def test_many_keys_referenced_again_and_again_resolve_and_a_dangling_one_is_found():
    # More referenced keys than the analysis remembers as resolved, each
    # referenced several times, in and out of order.
    users = [user(i, f"u{i}") for i in range(1, 6001)]
    docs = [doc(f"d{i}") for i in range(6000)]
    refs = [
        workflow(n, document=f"d{n % 6000}", participants=[[f"u{n % 6000 + 1}"], [f"u{n % 7 + 1}"]])
        for n in range(1, 30001)
    ]
    report = analyse([*users, *docs, *refs, workflow(30001, document="d6000")])
    refs = report["references"]
    assert (refs["checked"], refs["resolved"], refs["dangling"]) == (90001, 90000, 1)
    assert refs["dangling_items"][0]["value"] == "d6000"


def test_the_objects_before_an_error_in_the_stream_are_counted():
    text = one_per_line([user(1, "a"), workflow(1, participants=[["a"], ["b"]])])
    analysis = FixtureAnalysis(relations=RELATIONS, natural_keys=NATURAL_KEYS)
    with pytest.raises(FixtureError):
        analysis.add_all(iter_fixture(io.BytesIO(text.rstrip()[:-1].encode())))
    report = analysis.report()
    assert report["objects"] == 2
    assert (report["references"]["resolved"], report["references"]["dangling"]) == (1, 1)


def test_the_report_can_be_asked_twice():
    analysis = FixtureAnalysis(relations=RELATIONS, natural_keys=NATURAL_KEYS)
    for obj in [doc("d1", owner=["alice"]), user(1, "alice"), doc("d2", owner=7)]:
        analysis.add(obj)
    assert analysis.report() == analysis.report()
    assert analysis.report()["references"]["resolved"] == 1


# Natural keys described by parts (the dump's natural_key_fields): a model
# keyed by its primary key, and one whose key holds its parent's.
SITE, ROOM, SAMPLE = "lab.site", "lab.room", "lab.sample"
PART_RELATIONS = {
    ROOM: {"site": {"model": SITE, "many": False}},
    SAMPLE: {
        "site": {"model": SITE, "many": False},
        "room": {"model": ROOM, "many": False},
        "sites": {"model": SITE, "many": True},
    },
}
PART_KEYS = {SITE: ["pk"], ROOM: ["name", {"natural_key_of": "site"}]}


def test_a_reference_by_a_natural_key_that_is_the_primary_key_resolves():
    objects = [
        {"model": SITE, "pk": "NORTH", "fields": {"title": "North"}},
        {"model": SITE, "pk": "SOUTH", "fields": {"title": "South"}},
        {"model": SAMPLE, "pk": 1, "fields": {"site": ["NORTH"], "sites": [["SOUTH"]]}},
        {"model": SAMPLE, "pk": 2, "fields": {"site": ["EAST"]}},
    ]
    refs = analyse(objects, relations=PART_RELATIONS, natural_keys=PART_KEYS)["references"]
    assert (refs["checked"], refs["resolved"], refs["dangling"]) == (3, 2, 1)
    assert refs["dangling_items"][0]["value"] == ["EAST"]


def test_a_natural_key_holding_a_related_objects_natural_key_is_rebuilt_in_place():
    objects = [
        {"model": SITE, "pk": "NORTH", "fields": {}},
        {"model": ROOM, "pk": 1, "fields": {"name": "cold", "site": ["NORTH"]}},
        {"model": SAMPLE, "pk": 1, "fields": {"room": ["cold", "NORTH"]}},
        {"model": SAMPLE, "pk": 2, "fields": {"room": ["cold", "SOUTH"]}},
        {"model": SAMPLE, "pk": 3, "fields": {"room": ["NORTH", "cold"]}},
    ]
    refs = analyse(objects, relations=PART_RELATIONS, natural_keys=PART_KEYS)["references"]
    # The room's own reference to its site, and the first sample's to the room.
    assert (refs["checked"], refs["resolved"], refs["dangling"]) == (4, 2, 2)
    assert [item["pk"] for item in refs["dangling_items"]] == [2, 3]


def test_a_forward_reference_by_a_composite_natural_key_resolves_at_the_end():
    objects = [
        {"model": SAMPLE, "pk": 1, "fields": {"room": ["cold", "NORTH"]}},
        {"model": ROOM, "pk": 1, "fields": {"name": "cold", "site": ["NORTH"]}},
        {"model": SITE, "pk": "NORTH", "fields": {}},
    ]
    refs = analyse(objects, relations=PART_RELATIONS, natural_keys=PART_KEYS)["references"]
    assert (refs["checked"], refs["resolved"], refs["dangling"]) == (2, 2, 0)


def test_a_foreign_key_to_a_unique_field_resolves_against_that_fields_values():
    relations = {
        "lab.attachment": {"specimen": {"model": "lab.specimen", "many": False, "to_field": "code"}}
    }
    objects = [
        {"model": "lab.attachment", "pk": 1, "fields": {"specimen": "S-2"}},
        {"model": "lab.specimen", "pk": "9c5b94b1", "fields": {"code": "S-1"}},
        {"model": "lab.specimen", "pk": "0d1e2f3a", "fields": {"code": "S-2"}},
        {"model": "lab.attachment", "pk": 2, "fields": {"specimen": "S-1"}},
        # A primary key of the target is not a value of its code.
        {"model": "lab.attachment", "pk": 3, "fields": {"specimen": "9c5b94b1"}},
    ]
    refs = analyse(objects, relations=relations, natural_keys={})["references"]
    assert (refs["checked"], refs["resolved"], refs["dangling"]) == (3, 2, 1)
    assert refs["dangling_items"][0]["target"] == "lab.specimen (code)"


def test_a_natural_key_through_a_to_field_reference_dangles_when_its_target_never_comes():
    relations = {
        "lab.attachment": {"specimen": {"model": "lab.specimen", "many": False, "to_field": "code"}}
    }
    objects = [{"model": "lab.attachment", "pk": 1, "fields": {"specimen": ["S-9"]}}]
    refs = analyse(objects, relations=relations, natural_keys={"lab.specimen": ["code"]})[
        "references"
    ]
    assert (refs["checked"], refs["resolved"], refs["dangling"]) == (1, 0, 1)
    assert refs["dangling_items"][0]["target"] == "lab.specimen"

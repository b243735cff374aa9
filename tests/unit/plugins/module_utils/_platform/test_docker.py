from ansible_collections.edms.backup.plugins.module_utils._platform.docker import describe


def test_describe_keeps_short_arguments_and_hides_inline_code():
    code = "import json\n" * 50
    assert describe(["python", "-c", code, "x"]) == f"python -c <{len(code)} characters> x"

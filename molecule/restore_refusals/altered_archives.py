"""Altered copies of an archive, for the restore_refusals scenario.

python altered_archives.py ARCHIVE DIRECTORY writes into DIRECTORY:

- corrupt.zip: the fixture (database_backup.json) with one model name changed,
  its hash in the metadata not;
- foreign.zip: a zip that is no EDMS backup (only a dump.sql);
- mismatch.zip: metadata naming a migration of the documents app that the
  application does not have (0099_from_another_branch).

It fails if a change did not apply, so that an unaltered copy cannot stand in
for an altered one (and a refusal go unproven).
"""

import json
import os
import sys
import zipfile


def corrupt(name, data):
    if name != "database_backup.json":
        return data
    return data.replace(b'"documents.document"', b'"documents.documenx"', 1)


def mismatch(name, data):
    if name != "metadata.json":
        return data
    metadata = json.loads(data)
    metadata["migrations"]["documents"].append("0099_from_another_branch")
    return json.dumps(metadata).encode()


def copy_with(archive, path, change):
    """A copy of archive at path, each member passed through change; exactly one must differ."""
    changed = []
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            altered = change(info.filename, data)
            if altered != data:
                changed.append(info.filename)
            target.writestr(info, altered)
    if len(changed) != 1:
        sys.exit(f"{path}: expected one member changed, changed {changed}")


def main(archive, directory):
    copy_with(archive, os.path.join(directory, "corrupt.zip"), corrupt)
    copy_with(archive, os.path.join(directory, "mismatch.zip"), mismatch)
    with zipfile.ZipFile(os.path.join(directory, "foreign.zip"), "w") as target:
        target.writestr("dump.sql", "CREATE TABLE t (id int);\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

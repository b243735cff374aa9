"""Peak memory of archive verification against fixture size.

Writes synthetic EDMS-like archives (this collection's layout and metadata:
relations, natural keys, file fields, one 1 KiB media file per document) of
the given fixture sizes with ArchiveWriter, and measures in fresh child
processes the peak RSS (VmHWM) and the throughput of

- verify_archive on the whole archive, and
- the fixture pass alone (iter_fixture and FixtureAnalysis over a plain copy
  of the fixture, metadata without its member list): what grows with the
  fixture itself, apart from what grows with the number of members.

With --encrypted, each archive is also encrypted to a key made for the run
(age v1, as edms_encrypt_to does) and verified through decryption: its time,
peak RSS and their ratios to the plain archive's are reported beside.

Exit 1 when an archive does not verify, or when the largest archive's peak
RSS for verify_archive (plain, or encrypted) exceeds the smallest one's by
more than --max-ratio.

    .venv/bin/python benchmarks/verify_memory.py --sizes 50 500 --encrypted
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# dataset puts this checkout's collection on the import path: it comes first.
from dataset import MB, check_sizes, size_parser, write_archive

# isort: split
from ansible_collections.edms.backup.plugins.module_utils._format import age
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE,
    METADATA,
    ArchiveReader,
    use_decryption_key,
)
from ansible_collections.edms.backup.plugins.module_utils._format.fixture import (
    FixtureAnalysis,
    iter_fixture,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import verify_archive


def copy_fixture(path, directory):
    """The fixture and the metadata without its member list, as plain files."""
    os.makedirs(directory)
    with ArchiveReader.open(path) as reader:
        with reader.open_member(METADATA) as stream:
            metadata = json.loads(stream.read())
        with (
            reader.open_member(FIXTURE) as stream,
            open(os.path.join(directory, FIXTURE), "wb") as out,
        ):
            shutil.copyfileobj(stream, out, MB)
    del metadata["members"]
    with open(os.path.join(directory, METADATA), "w") as out:
        json.dump(metadata, out)
    return directory


def peak_rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(mode, path):
    """Verify one archive (mode "verify"), or only stream and analyse a
    fixture and metadata copied out of it into directory `path` (mode
    "fixture"); print what the parent measures, as JSON."""
    baseline = peak_rss_kb()
    if mode == "verify-encrypted":
        use_decryption_key(os.environ[KEY_VARIABLE])
    start = time.monotonic()
    if mode in ("verify", "verify-encrypted"):
        result = verify_archive(path)
        ok, problems = result["ok"], result["problems"]
    else:
        with open(os.path.join(path, METADATA)) as handle:
            metadata = json.load(handle)
        analysis = FixtureAnalysis(
            relations=metadata["relations"],
            natural_keys=metadata["natural_keys"],
            recreated_models=metadata["recreated_models"],
        )
        with open(os.path.join(path, FIXTURE), "rb") as stream:
            analysis.add_all(iter_fixture(stream))
        report = analysis.report()
        ok = report["references"]["dangling"] == 0 and report["duplicates"]["count"] == 0
        problems = [] if ok else ["the fixture has dangling references or duplicate keys"]
    seconds = time.monotonic() - start
    json.dump(
        {
            "ok": ok,
            "problems": problems,
            "seconds": seconds,
            "baseline_kb": baseline,
            "peak_kb": peak_rss_kb(),
        },
        sys.stdout,
    )


KEY_VARIABLE = "EDMS_BENCH_AGE_KEY"


def encrypted_copy(path, identity):
    """The archive encrypted to ``identity``'s recipient, beside it."""
    target = path + ".age"
    recipient = age.parse_recipient(age.recipient_of(identity))
    with open(path, "rb") as source, open(target, "wb") as out:
        age.encrypt(source, out, [recipient])
    return target


def measure(mode, path, env=None):
    argv = [sys.executable, os.path.abspath(__file__), "--child", mode, path]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{mode} of {path} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def main():
    parser = size_parser(__doc__, "verifications")
    parser.add_argument("--dir", help="where to write the archives (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the archives")
    parser.add_argument(
        "--encrypted", action="store_true", help="also verify each archive encrypted (age)"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    check_sizes(parser, args)

    workdir = tempfile.mkdtemp(prefix="edms-verify-bench-", dir=args.dir)
    rows = []
    identity = age.X25519PrivateKey.generate() if args.encrypted else None
    key_env = dict(os.environ, **{KEY_VARIABLE: age.identity_text(identity)}) if identity else None
    try:
        for index, size in enumerate(sorted(args.sizes)):
            start = time.monotonic()
            path, fixture_size, objects, media = write_archive(workdir, size, index)
            written = time.monotonic() - start
            runs = [measure("verify", path) for _run in range(args.repeat)]
            copy = copy_fixture(path, os.path.join(workdir, f"fixture{index}"))
            fixture_runs = [measure("fixture", copy) for _run in range(args.repeat)]
            sealed_runs = []
            if identity is not None:
                sealed = encrypted_copy(path, identity)
                sealed_runs = [
                    measure("verify-encrypted", sealed, key_env) for _run in range(args.repeat)
                ]
            bad = [run for run in runs + fixture_runs + sealed_runs if not run["ok"]]
            if bad:
                print(f"{path} does not verify: {bad[0]['problems']}", file=sys.stderr)
                return 1
            seconds = statistics.median(run["seconds"] for run in runs)
            rows.append(
                {
                    "fixture_mb": fixture_size / MB,
                    "objects": objects,
                    "media": media,
                    "archive_mb": os.path.getsize(path) / MB,
                    "write_s": written,
                    "verify_s": seconds,
                    "mb_per_s": fixture_size / MB / seconds,
                    "archive_mb_per_s": os.path.getsize(path) / MB / seconds,
                    "baseline_mb": statistics.median(run["baseline_kb"] for run in runs) / 1024,
                    "peak_mb": statistics.median(run["peak_kb"] for run in runs) / 1024,
                    "fixture_peak_mb": statistics.median(run["peak_kb"] for run in fixture_runs)
                    / 1024,
                }
            )
            if sealed_runs:
                rows[-1]["sealed_s"] = statistics.median(run["seconds"] for run in sealed_runs)
                rows[-1]["sealed_peak_mb"] = (
                    statistics.median(run["peak_kb"] for run in sealed_runs) / 1024
                )
    finally:
        if args.keep:
            print(f"archives kept in {workdir}")
        else:
            shutil.rmtree(workdir)

    header = (
        "fixture MB",
        "objects",
        "media files",
        "archive MB",
        "write s",
        "verify s",
        "MB/s",
        "archive MB/s",
        "start RSS MB",
        "peak RSS MB",
        "fixture only",
    )
    if identity is not None:
        header += ("encrypted s", "enc/plain s", "encrypted RSS")
    print(" | ".join(f"{title:>12}" for title in header))
    for row in rows:
        values = (
            f"{row['fixture_mb']:.1f}",
            f"{row['objects']:,}",
            f"{row['media']:,}",
            f"{row['archive_mb']:.1f}",
            f"{row['write_s']:.1f}",
            f"{row['verify_s']:.1f}",
            f"{row['mb_per_s']:.1f}",
            f"{row['archive_mb_per_s']:.1f}",
            f"{row['baseline_mb']:.1f}",
            f"{row['peak_mb']:.1f}",
            f"{row['fixture_peak_mb']:.1f}",
        )
        if identity is not None:
            values += (
                f"{row['sealed_s']:.1f}",
                f"{row['sealed_s'] / row['verify_s']:.2f}",
                f"{row['sealed_peak_mb']:.1f}",
            )
        print(" | ".join(f"{value:>12}" for value in values))
    ratio = rows[-1]["peak_mb"] / rows[0]["peak_mb"]
    fixture_ratio = rows[-1]["fixture_peak_mb"] / rows[0]["fixture_peak_mb"]
    print(f"peak RSS, largest over smallest: {ratio:.2f} (limit {args.max_ratio})")
    print(f"fixture pass alone (a plain file, metadata without members): {fixture_ratio:.2f}")
    if identity is None:
        return 0 if ratio <= args.max_ratio else 1
    sealed_ratio = rows[-1]["sealed_peak_mb"] / rows[0]["sealed_peak_mb"]
    print(
        f"encrypted: peak RSS, largest over smallest: {sealed_ratio:.2f} (limit {args.max_ratio})"
    )
    return 0 if max(ratio, sealed_ratio) <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())

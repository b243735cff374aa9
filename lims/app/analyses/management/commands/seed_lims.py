"""Fill an empty LIMS with a small, deterministic data set.

Fixed random seed, fixed timestamps (aware, UTC, with microseconds, around the
two daylight saving changes of Europe/Berlin in 2026), the same UUIDs, bytes
and media files every time. Objects are saved one by one through the ORM, so
the ledger's post_save receiver writes its audit rows (with a fixed clock).
Some rows are deleted at the end, so integer ids have gaps.

The last line of output is JSON: {"seeded": true|false, "counts": {...}}.
"""

import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.apps import apps
from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.db import transaction
from ledger import clock
from ledger.models import Annotation
from personnel.models import Analyst, Instrument, Laboratory
from specimens.models import Aliquot, Attachment, Consent, Freezer, Specimen

from analyses.models import (
    ArchivedResult,
    Assay,
    ElisaAssay,
    Measurement,
    Order,
    OrderLine,
)

SEED = 20260329
PASSWORD = "lims-reference-not-secret"
# Europe/Berlin springs forward at 01:00 UTC on 29 March 2026 and falls back at
# 01:00 UTC on 25 October 2026: the seed's times lie on both sides of each.
DST_CHANGES = (
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
)
STEP = timedelta(minutes=7, seconds=13, microseconds=123457)
LEDGER_START = datetime(2026, 3, 28, 23, 30, 0, 250001, tzinfo=UTC)

LABORATORIES = [
    ("BER-01", "Zentrallabor Berlin-Mitte", "Berlin", date(1998, 4, 1)),
    ("HAM-02", "Hafenlabor Hamburg", "Hamburg", date(2003, 9, 15)),
    ("MUC-03", "Labor am Isartor", "München", date(2011, 1, 10)),
    ("KOE-04", "Domlabor Köln", "Köln", date(2015, 6, 30)),
    ("ZÜR-05", "Laboratorium Zürich Oerlikon", "Zürich", date(2019, 11, 4)),
    ("lab 06", "Field station (lower case, space)", "Görlitz", date(2024, 2, 29)),
]
PARTNERS = [("BER-01", "HAM-02"), ("BER-01", "MUC-03"), ("KOE-04", "ZÜR-05"), ("HAM-02", "lab 06")]
ANALYSTS = [
    "Anna Müller",
    "Jürgen Groß",
    "Zoë Lefèvre",
    "Łukasz Wójcik",
    "Søren Ødegård",
    "Ayşe Yılmaz",  # noqa: RUF001
    "Chen Jìng",
    "Olivia O'Brien",
    "Mateo Peña",
    "Ingrid Åström",
    "Dmitri Волков",
    "Fatima Al-Hassan",
]
VENDORS = ["Thermo", "Roche", "Siemens", "Beckman", "Abbott"]
TAGS = [
    "urgent",
    "frozen",
    "Kühlkette",
    "comma,inside",
    'quote"inside',
    "{braces}",
    "NULL",
    "",
    "back\\slash",
    "日本語",
]
FILE_NAMES = [
    "Prüfbericht Nr. 1.txt",
    "mikroskopie/Zelle_ß_µm.bin",
    "spektren/2026/03/Spektrum_Å.dat",
    "年报/報告.csv",
    "plain.txt",
]


def dst_times(count):
    """count instants around the two changes, alternating, a STEP apart."""
    half = count // 2
    times = []
    for index in range(count):
        change = DST_CHANGES[index % 2]
        times.append(change + (index // 2 - half // 2) * STEP)
    return times


class Command(BaseCommand):
    help = "Seed an empty LIMS with deterministic reference data."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when laboratories exist already."
        )

    def handle(self, *args, **options):
        if options["if_empty"] and Laboratory.objects.exists():
            self.stdout.write(json.dumps({"seeded": False, "counts": counts()}))
            return
        self.rng = random.Random(SEED)
        with transaction.atomic(), clock.fixed(LEDGER_START):
            self.seed()
        self.stdout.write(json.dumps({"seeded": True, "counts": counts()}))

    def uuid(self):
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def seed(self):
        rng = self.rng
        labs = []
        for code, name, city, founded in LABORATORIES:
            lab = Laboratory(code=code, name=name, city=city, founded=founded)
            lab.save()
            labs.append(lab)
        by_code = {lab.code: lab for lab in labs}
        for left, right in PARTNERS:
            by_code[left].partners.add(by_code[right])

        # One hash for every analyst: a fixed salt keeps the seed deterministic
        # and hashing once keeps it fast.
        password = make_password(PASSWORD, salt="limsreferenceseed")
        analysts = []
        for index, name in enumerate(ANALYSTS):
            local = name.split()[0].lower().replace("'", "")
            analyst = Analyst(
                email=f"{local}.{index + 1:02d}@lims.example",
                full_name=name,
                laboratory=labs[index % len(labs)],
                password=password,
                is_staff=index == 0,
                is_superuser=index == 0,
                is_active=index != 11,
                joined_at=datetime(2020, 1, 1, tzinfo=UTC)
                + index * timedelta(days=97, microseconds=31),
            )
            analyst.save()
            analysts.append(analyst)

        instruments = []
        for index in range(10):
            instrument = Instrument(
                vendor=VENDORS[index % len(VENDORS)],
                serial=f"SN-{1000 + index * 37}",
                model_name=f"Analyser {chr(65 + index)}",
                laboratory=labs[index % len(labs)],
                firmware=bytes([0, 255, 10, 13]) + rng.randbytes(60),
                calibration_interval=timedelta(days=30 + index, hours=index, microseconds=index),
            )
            instrument.save()
            instruments.append(instrument)

        freezers = []
        for index in range(8):
            # Two laboratories have a freezer of the same name: the natural key
            # needs the laboratory's to tell them apart.
            freezer = Freezer(
                name=f"F-80 {'AB'[index % 2]}" if index < 4 else f"Kühlraum {index}",
                laboratory=labs[index // 2 % len(labs)] if index < 4 else labs[index % len(labs)],
                temperature_c=Decimal("-80.0") if index < 4 else Decimal("4.5"),
            )
            freezer.save()
            freezers.append(freezer)

        specimens = []
        for index, collected_at in enumerate(dst_times(40)):
            specimen = Specimen(
                id=self.uuid(),
                barcode=f"S26-{index + 1:04d}",
                kind=list(Specimen.Kind)[index % 4],
                laboratory=labs[index % len(labs)],
                freezer=freezers[index % len(freezers)] if index % 5 else None,
                collected_by=analysts[index % len(analysts)],
                collected_at=collected_at,
                tags=rng.sample(TAGS, index % 4),
                well_positions=[rng.randint(-3, 96) for position in range(index % 5)],
                archived=index % 7 == 3,
            )
            specimen.save()
            specimen.handled_by.set(rng.sample(analysts, 1 + index % 3))
            specimens.append(specimen)

        for index, specimen in enumerate(specimens[:24]):
            Consent(
                specimen=specimen,
                signed_on=date(2026, 3, 1) + timedelta(days=index),
                scope={"research": index % 2 == 0, "retention_years": 10 + index, "sprache": "de"},
            ).save()

        # Aliquots: for each of 12 specimens, two children saved before their
        # parent, then pointed at it, so a child's id is lower than its parent's.
        for index, specimen in enumerate(specimens[:12]):
            children = []
            for part in (1, 2):
                child = Aliquot(
                    specimen=specimen,
                    label=f"{specimen.barcode}-{index}.{part}",
                    volume_ul=Decimal("250.50") / part,
                )
                child.save()
                children.append(child)
            parent = Aliquot(
                specimen=specimen, label=f"{specimen.barcode}-{index}", volume_ul=Decimal("1000.00")
            )
            parent.save()
            for child in children:
                child.parent = parent
                child.save()

        for index, specimen in enumerate(specimens[:15]):
            name = f"specimens/{specimen.barcode}/{FILE_NAMES[index % len(FILE_NAMES)]}"
            if default_storage.exists(name):
                default_storage.delete(name)
            body = f"{specimen.barcode} {index}\n".encode() + rng.randbytes(200 + index * 50)
            stored = default_storage.save(name, ContentFile(body))
            Attachment(
                specimen=specimen,
                title=f"Anhang {index + 1}: {FILE_NAMES[index % len(FILE_NAMES)]}",
                file=stored,
                uploaded_at=specimen.collected_at + timedelta(hours=2, microseconds=7),
            ).save()

        assays = []
        for index in range(13):
            fields = {
                "code": f"AS-{index + 1:03d}",
                "name": f"Assay {index + 1}",
                "incubation": timedelta(
                    minutes=30 * (index + 1), microseconds=500_000 * (index % 2)
                ),
            }
            if index >= 8:
                assay = ElisaAssay(
                    antibody=f"anti-IgG clone {index}",
                    dilution=Decimal("0.0125") * index,
                    **fields,
                )
            else:
                assay = Assay(**fields)
            assay.save()
            assay.instruments.set(rng.sample(instruments, 1 + index % 3))
            assays.append(assay)

        orders = []
        for index, placed_at in enumerate(dst_times(24)):
            fields = {
                "number": f"O-2026-{index + 1:05d}",
                "requested_by": analysts[index % len(analysts)],
                "laboratory": labs[index % len(labs)],
                "placed_at": placed_at,
            }
            # Every fourth order keeps the database's defaults (db_default).
            if index % 4:
                fields["status"] = ["received", "running", "done"][index % 3]
                fields["priority"] = 1 + index % 5
            order = Order(**fields)
            order.save()
            order.specimens.set(rng.sample(specimens, 1 + index % 3))
            orders.append(order)

        lines = []
        for index, order in enumerate(orders):
            for assay in rng.sample(assays, 1 + index % 3):
                line = OrderLine(
                    order=order,
                    assay=assay,
                    replicates=1 + index % 4,
                    volume_ul=25 * (1 + index % 6),
                    note="" if index % 2 else "Doppelbestimmung, bitte «zeitnah»",
                )
                line.save()
                lines.append(line)

        values = [
            Decimal("-12345678901234.123456"),
            Decimal("99999999999999.999999"),
            Decimal("-0.000001"),
            Decimal("0.000000"),
            Decimal("3.141593"),
        ]
        measurements = []
        for index, measured_at in enumerate(dst_times(48)):
            line = lines[index % len(lines)]
            data = {
                "schema": 2,
                "einheit": "µmol/l",
                "beyond_2_53": 2**53 + index + 1,
                "beyond_2_63": 2**63 + index + 1,
                "negative_beyond_2_63": -(2**63) - index - 2,
                "fraction": 0.1 * index,
                "nested": {"kanal": [index, {"ok": index % 2 == 0, "note": None}], "名前": "测量"},
            }
            measurement = Measurement(
                order_line=line,
                specimen=specimens[index % len(specimens)],
                instrument=instruments[index % len(instruments)] if index % 6 else None,
                value=values[index % len(values)]
                if index < len(values)
                else Decimal(rng.randint(-(10**19), 10**19)) / 10**6,
                elapsed=timedelta(seconds=index * 61, microseconds=index * 1001),
                data=data,
                raw=rng.randbytes(16 + index) + b"\x00\xff",
                measured_at=measured_at,
            )
            measurement.save()
            measurements.append(measurement)

        archived = []
        for index in range(20):
            result = ArchivedResult(
                specimen_barcode=specimens[index].barcode,
                assay_code=assays[index % len(assays)].code,
                value=Decimal(rng.randint(-(10**12), 10**12)) / 10**6,
                archived_at=datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - index * STEP,
            )
            result.save()
            archived.append(result)

        targets = labs[:4] + specimens[:6] + assays[:5] + instruments[:5]
        annotations = []
        for index, target in enumerate(targets):
            annotation = Annotation(
                subject=target,
                author=analysts[index % len(analysts)],
                text=f"Notiz {index + 1} zu {target}: geprüft ✓",
                written_at=DST_CHANGES[1] + index * STEP,
            )
            annotation.save()
            annotations.append(annotation)

        # Holes in the integer ids.
        for row in (
            measurements[4],
            measurements[5],
            measurements[17],
            archived[2],
            annotations[7],
        ):
            row.delete()


def counts():
    """Rows per LIMS model: every row of a model whose default manager hides
    some, the rows a proxy's own manager selects, the view's rows."""
    result = {}
    for label in ("personnel", "specimens", "analyses", "ledger"):
        for model in apps.get_app_config(label).get_models():
            manager = model._default_manager if model._meta.proxy else model._base_manager
            result[model._meta.label] = manager.count()
    return result

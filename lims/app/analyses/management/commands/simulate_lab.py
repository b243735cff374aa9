"""Write to the LIMS the way its instruments and staff would, until stopped.

Each round, in one transaction, through ordinary ORM saves (the ledger's
receiver records them): a new specimen with a media file, an order with lines
and measurements, an annotation, an update of a laboratory, and now and then
an archived specimen. One JSON line per round on stdout. SIGTERM or SIGINT
ends the loop after the current round (exit status 0); a database that is
briefly away (a restore) costs a round, not the writer.
"""

import json
import random
import signal
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, transaction
from django.utils import timezone
from ledger.models import Annotation
from personnel.models import Analyst, Instrument, Laboratory
from specimens.models import Attachment, Freezer, Specimen

from analyses.models import Assay, Measurement, Order, OrderLine


class Command(BaseCommand):
    help = "Keep writing specimens, orders, measurements and files until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=0.3, help="seconds between rounds")
        parser.add_argument("--rounds", type=int, default=0, help="stop after N rounds (0: never)")
        parser.add_argument(
            "--archive-every", type=int, default=7, help="archive a specimen every N rounds"
        )
        parser.add_argument("--seed", type=int, default=None, help="random seed (default: none)")

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.rng = random.Random(options["seed"])
        if not Laboratory.objects.exists() or not Assay.objects.exists():
            raise CommandError("the LIMS is empty: run seed_lims first")
        done = 0
        while not stop.is_set() and (options["rounds"] <= 0 or done < options["rounds"]):
            done += 1
            archive = options["archive_every"] > 0 and done % options["archive_every"] == 0
            try:
                line = self.round(archive)
            except DatabaseError as exc:
                close_old_connections()
                line = {
                    "error": str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                }
            self.stdout.write(json.dumps({"round": done, **line}, ensure_ascii=False))
            self.stdout.flush()
            stop.wait(max(0.0, options["interval"]))

    def round(self, archive):
        rng = self.rng
        now = timezone.now()
        with transaction.atomic():
            lab = rng.choice(list(Laboratory.objects.all()))
            analysts = list(Analyst.objects.filter(is_active=True))
            analyst = rng.choice(analysts)
            specimen = Specimen.objects.create(
                barcode=f"LIVE-{uuid.uuid4().hex[:12].upper()}",
                kind=rng.choice(list(Specimen.Kind)),
                laboratory=lab,
                freezer=Freezer.objects.filter(laboratory=lab).first(),
                collected_by=analyst,
                collected_at=now,
                tags=["live", rng.choice(["Kühlkette", "eilig", "routine"])],
                well_positions=[rng.randint(1, 96)],
            )
            specimen.handled_by.add(*rng.sample(analysts, min(2, len(analysts))))
            attachment = Attachment(specimen=specimen, title="Messprotokoll", uploaded_at=now)
            # upload_to puts it under specimens/<barcode>/; save() stores the row.
            attachment.file.save(
                f"live/{now:%Y/%m/%d}/Messung_Ä_{specimen.barcode}.bin",
                ContentFile(rng.randbytes(256)),
                save=True,
            )
            order = Order.objects.create(
                number=f"L-{uuid.uuid4().hex[:16].upper()}",
                requested_by=analyst,
                laboratory=lab,
                placed_at=now,
            )
            order.specimens.add(specimen)
            instruments = list(Instrument.objects.filter(laboratory=lab)) or [None]
            measurements = []
            for assay in rng.sample(list(Assay.objects.all()), 2):
                line = OrderLine.objects.create(
                    order=order, assay=assay, replicates=rng.randint(1, 3), volume_ul=50
                )
                measurements.append(
                    Measurement.objects.create(
                        order_line=line,
                        specimen=specimen,
                        instrument=rng.choice(instruments),
                        value=Decimal(rng.randint(-(10**12), 10**12)).scaleb(-6),
                        elapsed=timedelta(milliseconds=rng.randint(1, 10**6)),
                        data={
                            "live": True,
                            "counter": 2**63 + rng.randint(0, 1000),
                            "einheit": "mg/dl",
                        },
                        raw=rng.randbytes(32),
                        measured_at=now,
                    ).pk
                )
            Annotation.objects.create(
                subject=specimen, author=analyst, text="Eingang geprüft", written_at=now
            )
            lab.name = lab.name.split(" · ")[0] + f" · {now:%H:%M:%S}"
            lab.save(update_fields=["name"])
            archived = None
            if archive:
                oldest = Specimen.objects.exclude(pk=specimen.pk).order_by("collected_at").first()
                if oldest is not None:
                    oldest.archived = True
                    oldest.save(update_fields=["archived"])
                    archived = str(oldest.pk)
        return {
            "at": now.isoformat(),
            "specimen": str(specimen.pk),
            "file": attachment.file.name,
            "order": order.pk,
            "measurements": measurements,
            "archived": archived,
        }

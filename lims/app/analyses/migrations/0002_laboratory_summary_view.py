"""The view behind the unmanaged model LaboratorySummary."""
# ruff: noqa: RUF012

from django.db import migrations

CREATE_VIEW = """
CREATE VIEW lims_laboratory_summary AS
SELECT lab.code AS laboratory_code,
       (SELECT count(*) FROM specimens_specimen AS s
         WHERE s.laboratory_id = lab.code) AS specimen_count,
       (SELECT count(*) FROM "order" AS o
         WHERE o.laboratory_id = lab.code) AS order_count,
       (SELECT max(m.measured_at) FROM analyses_measurement AS m
          JOIN specimens_specimen AS s ON s.id = m.specimen_id
         WHERE s.laboratory_id = lab.code) AS last_measured_at
  FROM personnel_laboratory AS lab
"""

DROP_VIEW = "DROP VIEW IF EXISTS lims_laboratory_summary"


class Migration(migrations.Migration):
    dependencies = [
        ("analyses", "0001_initial"),
        ("specimens", "0001_initial"),
        ("personnel", "0001_initial"),
    ]

    operations = [migrations.RunSQL(CREATE_VIEW, DROP_VIEW)]

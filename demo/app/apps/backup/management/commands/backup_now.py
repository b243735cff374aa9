"""manage.py backup_now: the application's own backup from the command line
(what a cron job or a runbook calls), through the same BackupService."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.backup.models import BackupConfiguration
from apps.backup.services import BackupError, BackupService


class Command(BaseCommand):
    help = "Run a backup configuration now; prints the backup's path."

    def add_arguments(self, parser):
        parser.add_argument("--config", help="configuration name (default: the first)")
        parser.add_argument("--user", help="username (default: the first superuser)")

    def handle(self, *args, **options):
        users = get_user_model().objects
        if options["user"]:
            user = users.filter(username=options["user"]).first()
        else:
            user = users.filter(is_superuser=True).order_by("pk").first()
        if options["config"]:
            config = BackupConfiguration.objects.filter(name=options["config"]).first()
            if config is None:
                raise CommandError(f"no backup configuration named {options['config']!r}")
        else:
            config = BackupConfiguration.objects.order_by("pk").first()
            if config is None:
                raise CommandError("there is no backup configuration")
        try:
            job = BackupService().execute_backup(config, user)
        except BackupError as exc:
            raise CommandError(f"Backup failed: {exc}") from exc
        self.stdout.write(job.backup_path)

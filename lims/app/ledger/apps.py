from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Audit ledger and annotations"

    def ready(self):
        from ledger import receivers

        receivers.connect()

from django.apps import AppConfig


class SpecimensConfig(AppConfig):
    name = "specimens"
    verbose_name = "Specimens and storage"

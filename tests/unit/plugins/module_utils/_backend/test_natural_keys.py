"""How the dump describes natural keys (_backend/dump.py natural_key_fields),
against the real Django and models of the test's own, in a Python of its
own (models need a configured Django; no database is opened)."""

import json
import subprocess
import sys

from ansible_collections.edms.backup.plugins.module_utils._backend import dump
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    BACKEND,
    with_backend,
)

SETTINGS = """
SECRET_KEY = "not secret"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shapes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""

MODELS = """
from django.db import models


class CodeManager(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class Site(models.Model):
    code = models.CharField(max_length=10, primary_key=True)
    title = models.CharField(max_length=50)
    objects = CodeManager()

    def natural_key(self):
        return (self.code,)


class Pair(models.Model):
    left = models.CharField(max_length=10)
    right = models.IntegerField()

    def natural_key(self):
        return (self.left, self.right)


class Room(models.Model):
    name = models.CharField(max_length=10)
    site = models.ForeignKey(Site, on_delete=models.CASCADE)

    def natural_key(self):
        return (self.name,) + self.site.natural_key()

    natural_key.dependencies = ["shapes.site"]


class Shelf(models.Model):
    label = models.CharField(max_length=10)
    room = models.ForeignKey(Room, on_delete=models.CASCADE)

    def natural_key(self):
        return self.room.natural_key() + (self.label,)


class Place(models.Model):
    name = models.CharField(max_length=10, unique=True)

    def natural_key(self):
        return (self.name,)


class Lab(Place):
    floor = models.IntegerField(default=0)


class Computed(models.Model):
    name = models.CharField(max_length=10)

    def natural_key(self):
        return (self.name.upper(),)


class Plain(models.Model):
    name = models.CharField(max_length=10)


class Lowered(models.Model):
    name = models.CharField(max_length=10)

    def natural_key(self):
        return (self.name.lower(),)


class Converted(models.Model):
    name = models.CharField(max_length=10)
    site = models.ForeignKey(Site, on_delete=models.CASCADE)

    def natural_key(self):
        return (self.name,) + tuple(str(part) for part in self.site.natural_key())


class Broken(models.Model):
    name = models.CharField(max_length=10)

    def __init__(self, *args, **kwargs):
        raise RuntimeError("no instance without a database")

    def natural_key(self):
        return (self.name,)


class Ordered(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, to_field="title")


class Urgent(Pair):
    class Meta:
        proxy = True


class ToProxy(models.Model):
    pair = models.ForeignKey(Urgent, on_delete=models.CASCADE)
"""

SHOW = f"""
from {BACKEND}.setup import answer, setup
setup()
from django.apps import apps
from {BACKEND}.dump import natural_key_fields
models = apps.get_app_config("shapes").get_models()
answer({{m._meta.label_lower: natural_key_fields(m) for m in models}})
"""

RELATIONS = f"""
from {BACKEND}.setup import answer, setup
setup()
from django.apps import apps
from {BACKEND}.dump import relations_of
models = apps.get_app_config("shapes").get_models()
answer({{m._meta.label_lower: relations_of(m) for m in models if relations_of(m)}})
"""


def describe(tmp_path, program=None):
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "__init__.py").write_text("")
    (tmp_path / "shapes" / "models.py").write_text(MODELS)
    (tmp_path / "shape_settings.py").write_text(SETTINGS)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            with_backend(program or SHOW, dump),
            json.dumps({"settings": "shape_settings"}),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
    )
    return json.loads(proc.stdout)


def test_each_shape_of_natural_key_is_described_by_its_parts(tmp_path):
    assert describe(tmp_path) == {
        # The primary key itself: the fixture holds it as "pk", not in "fields".
        "shapes.site": ["pk"],
        "shapes.pair": ["left", "right"],
        # A related object's natural key, in place, before or after its own field.
        "shapes.room": ["name", {"natural_key_of": "site"}],
        "shapes.shelf": [{"natural_key_of": "room"}, "label"],
        "shapes.place": ["name"],
        # An inherited field is in the parent's object, not the child's: not told.
        "shapes.lab": None,
        # A computed key cannot be rebuilt from the fixture.
        "shapes.computed": None,
        "shapes.plain": None,
        # A value made from a field is not the field: not told, never guessed.
        "shapes.lowered": None,
        "shapes.converted": None,
        # A model that cannot even be made without a database: not told.
        "shapes.broken": None,
        "shapes.ordered": None,
        "shapes.toproxy": None,
        # A proxy: its objects and references are under its concrete model.
        "shapes.urgent": None,
    }


def test_references_name_the_concrete_model_and_the_field_a_to_field_points_to(tmp_path):
    found = describe(tmp_path, RELATIONS)
    assert found["shapes.ordered"] == {
        "site": {"model": "shapes.site", "many": False, "to_field": "title"}
    }
    # A proxy's objects are written under its concrete model's label.
    assert found["shapes.toproxy"] == {"pair": {"model": "shapes.pair", "many": False}}
    assert found["shapes.room"] == {"site": {"model": "shapes.site", "many": False}}

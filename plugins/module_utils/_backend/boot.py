# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The start of every program the collection runs inside the backend container.

The host (_platform/django.py backend_program) sends this file's source, then a call of
install() with the source of each backend module the program needs, then a
call of its entry point, as one ``python -c`` text for the application's own
interpreter: the container gets no new packages and no files. The modules keep
their names (``ansible_collections.edms.backup.plugins.module_utils._backend.*``),
so that they import each other there as they do on the host.

Standard library only, and nothing at module level but definitions.
"""

import importlib.abc
import importlib.util
import linecache
import sys


class SourceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the modules of ``sources`` ({name: source}) and their parent
    packages (empty) from text, before any other finder."""

    def __init__(self, sources):
        self.sources = dict(sources)
        self.packages = {
            ".".join(name.split(".")[:depth])
            for name in self.sources
            for depth in range(1, name.count(".") + 1)
        }

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.sources:
            return importlib.util.spec_from_loader(fullname, self, origin=self.filename(fullname))
        if fullname in self.packages:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    @staticmethod
    def filename(fullname):
        return "<edms.backup %s>" % fullname

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        name = module.__name__
        if name not in self.sources:
            return  # a parent package: empty
        source = self.sources[name]
        filename = self.filename(name)
        # Tracebacks show the lines of the program that failed.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)  # pylint: disable=exec-used


def install(sources):
    """Make the modules of {name: source} importable in this process."""
    sys.meta_path.insert(0, SourceFinder(sources))


def run(module, function):
    """Call module.function() (the program's entry point)."""
    return getattr(importlib.import_module(module), function)()

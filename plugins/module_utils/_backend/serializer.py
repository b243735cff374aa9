# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The dump's writing of objects (dump.py): one object per line, through
Django's JSON encoder that keeps microseconds, and Django's serializer for
the models the fast path (rows.py) leaves to instances.

It imports Django at module level: dump.py imports it only after Django is
set up. On the host without Django it still imports, for its source; the
classes are never made there.
"""

import datetime

try:
    from django.core.serializers.json import DjangoJSONEncoder
    from django.core.serializers.json import Serializer as JSONSerializer
except ImportError:  # the host without Django
    DjangoJSONEncoder = JSONSerializer = object


class LosslessEncoder(DjangoJSONEncoder):
    """Django's encoder, but datetimes and times keep their microseconds."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        if isinstance(o, datetime.time):
            if o.utcoffset() is not None:
                raise ValueError("JSON can't represent timezone-aware times.")
            return o.isoformat()
        return super().default(o)


class Emitter:
    """The fixture's objects, one per line, whichever path made them."""

    def __init__(self, stream):
        self.stream = stream
        self.encode = LosslessEncoder(ensure_ascii=False).encode
        self.separator = "\n"
        self.written = 0

    def emit(self, dump_object):
        self.stream.write(self.separator)
        self.stream.write(self.encode(dump_object))
        self.separator = ",\n"
        self.written += 1


class FixtureSerializer(JSONSerializer):
    """Instances through Django's serializer; natural keys and m2m values from the maps."""

    def __init__(self, key_maps, emitter):
        super().__init__()
        self.key_maps = key_maps
        self.emitter = emitter
        self.m2m = {}

    def start_serialization(self):
        self._init_options()

    def end_serialization(self):
        pass

    def end_object(self, obj):
        self.emitter.emit(self.get_dump_object(obj))
        self._current = None

    def handle_fk_field(self, obj, field):
        target = field.remote_field.model
        key_map = self.key_maps.get(target)
        if key_map is None:
            return super().handle_fk_field(obj, field)
        raw = getattr(obj, field.attname)
        if raw is None:
            value = None
        elif field.target_field is target._meta.pk and raw in key_map:
            value = key_map[raw]
        else:
            value = list(getattr(obj, field.name).natural_key())
        self._current[field.name] = value

    def handle_m2m_field(self, obj, field):
        if not field.remote_field.through._meta.auto_created:
            return
        self._current[field.name] = self.m2m[field].values_for(obj.pk)

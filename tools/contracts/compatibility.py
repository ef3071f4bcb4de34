"""The compatibility gate: what in the current contracts would break a
service still on the last release, during a rolling upgrade.

Both sides are AsyncAPI documents built by tools.contracts.asyncapi. Two
directions matter:

- what a service *receives* (an RPC method's arguments) must accept all that
  it accepted: an argument removed, made required, added as required,
  retyped or given narrower values breaks a caller on the old release;
- what a service *sends* (an event's data, an RPC method's result) must stay
  readable by the old consumers: a field removed, renamed, retyped, made
  optional or nullable, or given values the old schema did not allow,
  breaks them. A new field does not: every consumer ignores what it does
  not know.

An event type or RPC method removed breaks its users. And an event whose
data changed at all must say so with a higher schema version.
"""
import functools
from dataclasses import dataclass

# keywords whose lower bound only a narrower schema raises, and upper ones
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")
# what says what a value is; descriptions, examples and defaults do not
SHAPE_KEYWORDS = {"type", "format", "properties", "required", "items", "enum", "const",
                  "pattern", "anyOf", *LOWER_BOUNDS, *UPPER_BOUNDS}

HOW_TO_EVENT = ("make it a new event type (for example {name}_v2), published beside "
                "{name} for one release; see docs/development.md#changing-an-event")
HOW_TO_METHOD = ("make it a new method (for example {name}_v2) beside {name} for one "
                 "release; see docs/development.md#changing-an-event")


@dataclass(frozen=True)
class Break:
    where: str  # "orders.order_paid", "products.get"
    field: str  # "data.total", "kwargs.product_id"; "" for the event or method itself
    problem: str
    how: str

    def __str__(self):
        place = f"{self.where}, {self.field}" if self.field else self.where
        return f"{place}: {self.problem}; {self.how}"


def events_of(document):
    """``{"service.event": (schema_version, data schema)}``."""
    found = {}
    for key, operation in document["operations"].items():
        if operation["action"] == "send":
            message = _message(document, operation["messages"][0])
            version = message["headers"]["properties"]["schema-version"]["const"]
            found[key.replace(".publish.", ".")] = (
                version, message["payload"]["properties"]["data"])
    return found


def methods_of(document):
    """``{"service.method": (kwargs schema, result schema)}``."""
    found = {}
    for key, operation in document["operations"].items():
        if operation["action"] == "receive":
            request = _message(document, operation["messages"][0])
            reply = _message(document, operation["reply"]["messages"][0])
            found[key] = (request["payload"]["properties"]["kwargs"],
                          reply["payload"]["properties"]["result"])
    return found


def _message(document, reference):
    """The message a ``#/channels/<channel>/messages/<name>`` reference names."""
    channel, name = reference["$ref"].removeprefix("#/channels/").split("/messages/")
    return _resolve(document, document["channels"][channel]["messages"][name])


def _resolve(document, node):
    while "$ref" in node:
        node = functools.reduce(
            lambda parent, part: parent[part], node["$ref"].removeprefix("#/").split("/"),
            document)
    return node


def breaks(released, current):
    """Every :class:`Break` between the ``released`` document and ``current``."""
    return (_event_breaks(events_of(released), events_of(current))
            + _method_breaks(methods_of(released), methods_of(current)))


def _event_breaks(old_events, new_events):
    found = []
    for key, (old_version, old_data) in old_events.items():
        if key not in new_events:
            found.append(Break(key, "", "the event type is no longer published, and "
                                        "consumers on the last release wait for it",
                               "publish it for one more release beside its replacement"))
            continue
        new_version, new_data = new_events[key]
        changes = sent(old_data, new_data, "data")
        how = HOW_TO_EVENT.format(name=key.split(".", 1)[1])
        found += [Break(key, field, problem, how) for field, problem in changes]
        if new_version < old_version:
            found.append(Break(key, "", f"its schema version went down from {old_version} "
                                        f"to {new_version}", "versions only go up"))
        elif not changes and new_version == old_version and shape(old_data) != shape(new_data):
            found.append(Break(key, "", f"its data changed but its schema version is still "
                                        f"{old_version}",
                               f"raise the version in its contract to {old_version + 1}"))
    return found


def _method_breaks(old_methods, new_methods):
    found = []
    for key, (old_arguments, old_result) in old_methods.items():
        if key not in new_methods:
            found.append(Break(key, "", "the RPC method is gone, and callers on the last "
                                        "release still call it",
                               "keep it for one more release beside its replacement"))
            continue
        new_arguments, new_result = new_methods[key]
        how = HOW_TO_METHOD.format(name=key.split(".", 1)[1])
        changes = (received(old_arguments, new_arguments, "kwargs")
                   + sent(old_result, new_result, "result"))
        found += [Break(key, field, problem, how) for field, problem in changes]
    return found


def shape(schema):
    """``schema`` without what does not change what a value may be
    (descriptions, examples, defaults)."""
    kept = {}
    for keyword, value in schema.items():
        if keyword == "properties":
            kept[keyword] = {name: shape(field) for name, field in value.items()}
        elif keyword == "items" and isinstance(value, dict):
            kept[keyword] = shape(value)
        elif keyword == "anyOf":
            kept[keyword] = [shape(option) for option in value]
        elif keyword in SHAPE_KEYWORDS:
            kept[keyword] = value
    return kept


def received(old, new, path):
    """What ``new`` no longer accepts of what ``old`` accepted, as
    ``(field, problem)`` pairs: it must be at least as wide."""
    return _compare(old, new, path, receiving=True)


def sent(old, new, path):
    """What ``new`` may send that a reader of ``old`` does not expect: it
    must be at most as wide, and keep every field."""
    return _compare(old, new, path, receiving=False)


def _compare(old, new, path, receiving):
    problems = []
    old_types, new_types = _types(old), _types(new)
    if old_types and new_types:
        if receiving and not old_types <= new_types:
            problems.append((path, f"no longer accepts {_names(old_types - new_types)} "
                                   f"(type {_names(old_types)} became {_names(new_types)})"))
        if not receiving and not new_types <= old_types:
            problems.append((path, f"may now be {_names(new_types - old_types)} "
                                   f"(type {_names(old_types)} became {_names(new_types)})"))
    if old.get("format") != new.get("format") and (old.get("format") or receiving):
        problems.append((path, f"its format changes from {old.get('format', 'none')} to "
                               f"{new.get('format', 'none')}"))
    problems += _values(old, new, path, receiving)
    if "anyOf" in old or "anyOf" in new:
        old_options, new_options = old.get("anyOf", [old]), new.get("anyOf", [new])
        if len(old_options) != len(new_options):
            problems.append((path, "its alternatives (anyOf) changed"))
        else:
            for old_option, new_option in zip(old_options, new_options):
                problems += _compare(old_option, new_option, path, receiving)
    if "properties" in old:
        problems += _fields(old, new, path, receiving)
    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        problems += _compare(old["items"], new["items"], f"{path}[]", receiving)
    return problems


def _fields(old, new, path, receiving):
    problems = []
    new_properties = new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name, old_field in old["properties"].items():
        field = f"{path}.{name}"
        if name not in new_properties:
            problems.append((field, "is removed or renamed, and the last release "
                                    + ("sends it" if receiving else "reads it")))
            continue
        if receiving and name in new_required and name not in old_required:
            problems.append((field, "becomes required, and callers on the last release "
                                    "may leave it out"))
        if not receiving and name in old_required and name not in new_required:
            problems.append((field, "becomes optional, and consumers on the last release "
                                    "expect it"))
        problems += _compare(old_field, new_properties[name], field, receiving)
    if receiving:
        for name in sorted(new_required - set(old["properties"])):
            problems.append((f"{path}.{name}", "is a new required field, which callers on "
                                               "the last release do not send"))
    return problems


def _values(old, new, path, receiving):
    """Enumerations, bounds and patterns, narrowed (receiving) or widened (sending)."""
    # the narrower schema must be new when receiving, old when sending
    wide, narrow = (old, new) if receiving else (new, old)
    problems = []
    if "enum" in narrow:
        outside = [value for value in wide.get("enum", ["any value"])
                   if value not in narrow["enum"]]
        if outside:
            problems.append((path, f"{'no longer accepts' if receiving else 'may now send'} "
                                   f"{', '.join(map(repr, outside))}"))
    for keyword in LOWER_BOUNDS + UPPER_BOUNDS:
        if keyword not in narrow:
            continue
        lower = keyword in LOWER_BOUNDS
        if keyword not in wide or (wide[keyword] < narrow[keyword] if lower
                                   else wide[keyword] > narrow[keyword]):
            problems.append((path, f"{keyword} changes from {old.get(keyword, 'none')} to "
                                   f"{new.get(keyword, 'none')}"))
    if "pattern" in narrow and wide.get("pattern") != narrow["pattern"]:
        problems.append((path, f"its pattern changes from {old.get('pattern')!r} to "
                               f"{new.get('pattern')!r}"))
    return problems


def _types(schema):
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    if "number" in kinds:
        kinds.add("integer")  # every integer is a number
    return kinds


def _names(kinds):
    return " or ".join(sorted(kinds - ({"integer"} if "number" in kinds else set())))

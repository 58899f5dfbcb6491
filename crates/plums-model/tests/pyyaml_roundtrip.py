"""PyYAML as the reference for tests/yaml_pyyaml.rs, in both directions.

Reads one JSON request on stdin and writes one JSON answer on stdout.

Values travel as "tagged JSON", so that no type is lost on the way:
    null                      None
    {"bool": true}            bool
    {"int": "-12"}            int (as a decimal string: Python ints are unbounded)
    {"float": "3ff0..."}      float, as the 16 hex digits of its IEEE bits; "nan" for any NaN
    {"str": "..."}            str
    {"timestamp": "..."}      datetime.date / datetime.datetime, written as PyYAML writes it
                              (date.isoformat() / datetime.isoformat(" "))
    {"binary": "41ff"}        bytes, as hex
    [...]                     list
    {"map": [[k, v], ...]}    dict, in insertion order

Modes (first argument):
    check  print "ok" (PyYAML is importable)
    dump   request: [tagged value, ...]
           answer:  [{"expected": tagged value as Python holds it, "texts": [safe_dump outputs],
                      "reads": [what safe_load reads back from each text]}]
    load   request: [{"yaml": text, "expected": tagged value or null}, ...]
           answer:  [{"loaded": tagged value or {"error": message},
                      "expected": the expected value normalised through Python}]
"""

import datetime
import json
import struct
import sys

import yaml

DUMP_OPTIONS = [
    dict(default_flow_style=False, sort_keys=False),
    dict(default_flow_style=None, sort_keys=False),
    dict(default_flow_style=False, sort_keys=False, allow_unicode=True),
    dict(default_flow_style=True, sort_keys=False, width=20),
    dict(default_flow_style=None, sort_keys=False, allow_unicode=True, width=10),
]


def tag(o):
    """A Python object as tagged JSON."""
    if o is None:
        return None
    if isinstance(o, bool):
        return {"bool": o}
    if isinstance(o, int):
        return {"int": str(o)}
    if isinstance(o, float):
        return {"float": "nan" if o != o else struct.pack(">d", o).hex()}
    if isinstance(o, str):
        return {"str": o}
    if isinstance(o, bytes):
        return {"binary": o.hex()}
    if isinstance(o, datetime.datetime):
        return {"timestamp": o.isoformat(" ")}
    if isinstance(o, datetime.date):
        return {"timestamp": o.isoformat()}
    if isinstance(o, list):
        return [tag(x) for x in o]
    if isinstance(o, dict):
        return {"map": [[tag(k), tag(v)] for k, v in o.items()]}
    if isinstance(o, set):
        return {"map": [[tag(k), None] for k in o]}
    raise TypeError("cannot tag %r" % (o,))


def untag(j):
    """Tagged JSON as a Python object."""
    if j is None:
        return None
    if isinstance(j, list):
        return [untag(x) for x in j]
    (kind, v), = j.items()
    if kind == "bool":
        return v
    if kind == "int":
        return int(v)
    if kind == "float":
        return float("nan") if v == "nan" else struct.unpack(">d", bytes.fromhex(v))[0]
    if kind == "str":
        return v
    if kind == "binary":
        return bytes.fromhex(v)
    if kind == "timestamp":
        # JSON string syntax is valid YAML double-quoted syntax.
        return yaml.safe_load("!!timestamp " + json.dumps(v))
    if kind == "map":
        return {untag(k): untag(x) for k, x in v}
    raise ValueError("unknown tag %r" % kind)


def main():
    mode = sys.argv[1]
    if mode == "check":
        print("ok")
        return
    request = json.load(sys.stdin)
    answer = []
    if mode == "dump":
        for item in request:
            obj = untag(item)
            texts = [yaml.safe_dump(obj, **opts) for opts in DUMP_OPTIONS]
            answer.append({
                "expected": tag(obj),
                "texts": texts,
                "reads": [tag(yaml.safe_load(t)) for t in texts],
            })
    elif mode == "load":
        for item in request:
            try:
                loaded = tag(yaml.safe_load(item["yaml"]))
            except Exception as exc:  # the test reports which document and why
                loaded = {"error": "%s: %s" % (type(exc).__name__, exc)}
            expected = item.get("expected")
            answer.append({
                "loaded": loaded,
                "expected": None if expected is None else tag(untag(expected)),
            })
    else:
        raise SystemExit("unknown mode %r" % mode)
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()

"""What blocktrace before 7915e52 (index layout 1) did with a trace's kept index
and code map, as a process of its own: ``python layout1.py TRACE INDEX_BODY
[CODES_BODY]``.

It reads the files where that version looked (``TRACE.idx`` and
``$XDG_CACHE_HOME/blocktrace/KEY.idx``, ``.codes`` after each; the newest
first) and uses one that is a ``blocktrace-index/1`` (``blocktrace-codes/1``)
file, sealed with its SHA-256, whose stamp is ``[size, ctime_ns, kind]`` of the
trace as it is now.  Anything else it "builds again" and keeps at the first place
that takes it, replacing whatever is there, as that version did: its index is
the body given (the msgpack array of a layout 2 index, from a test fixture)
with layout 1's stamp put in, so its bytes are what that version wrote.  It
prints ``kept`` or ``built`` for each file.  Only msgspec: none of today's
blocktrace is imported.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

import msgspec


def _places(trace: str, suffix: str) -> list[str]:
    """Beside the trace, then in the cache: the order it kept a file in."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(os.path.realpath(trace).encode("utf-8", "surrogateescape")).hexdigest()
    return [trace + ".idx" + suffix, os.path.join(base, "blocktrace", key[:32] + ".idx" + suffix)]


def _newest_first(places: list[str]) -> list[str]:
    found = []
    for order, place in enumerate(places):
        try:
            found.append((-os.stat(place).st_mtime_ns, order, place))
        except OSError:
            continue
    return [place for _, _, place in sorted(found)]


def _usable(place: str, magic: bytes, stamp: list[object]) -> bool:
    try:
        with open(place, "rb") as f:
            data = f.read()
    except OSError:
        return False
    start = len(magic) + 32
    if not data.startswith(magic):
        return False
    if hashlib.sha256(data[start:]).digest() != data[len(magic) : start]:
        return False
    try:
        fields = msgspec.msgpack.decode(data[start:])
    except msgspec.DecodeError:
        return False
    return isinstance(fields, list) and bool(fields) and fields[0] == stamp


def _keep(places: list[str], data: bytes) -> None:
    for place in places:
        try:
            os.makedirs(os.path.dirname(place), exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".blocktrace-idx-", dir=os.path.dirname(place))
        except OSError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, place)
        return


def main(trace: str, index_body: str, codes_body: str | None = None) -> None:
    st = os.stat(trace)
    stamp: list[object] = [st.st_size, st.st_ctime_ns, "plain"]
    todo = [("", b"blocktrace-index/1\n", index_body)]
    if codes_body is not None:
        todo.append((".codes", b"blocktrace-codes/1\n", codes_body))
    for suffix, magic, body_path in todo:
        places = _places(trace, suffix)
        if any(_usable(place, magic, stamp) for place in _newest_first(places)):
            print("kept")
            continue
        with open(body_path, "rb") as f:
            fields = msgspec.msgpack.decode(f.read())
        fields[0] = stamp
        body = msgspec.msgpack.encode(fields)
        _keep(places, magic + hashlib.sha256(body).digest() + body)
        print("built")


if __name__ == "__main__":
    main(*sys.argv[1:])

/* blocktrace.golden._cstabilise: the per-line loop of the golden form, in C
 * (and the other per-line or per-event work of a golden recording: known,
 * unsettled, spawn_watch below).
 *
 * scan(data, start, probes, seen, add) walks the complete lines of ``data``
 * (a trace's bytes, each line ``<body>,"hash":"<64 hex>"}\n``) from offset
 * ``start`` and hands each line's body to ``add`` (the golden's line writer)
 * as long as Python has nothing to do for it:
 *
 * - a body in which none of ``probes`` occurs (byte strings: a file member,
 *   an address, the root's path ...) holds no volatile value: handed on as it is;
 * - a body that may hold one (``probes`` None: every body may) and that was
 *   rewritten before (a key of ``seen``, the dict of rewritten bodies): its
 *   rewritten form, ``seen[body]``, is handed on.
 *
 * It stops at the first line Python must see and returns ``(offset, why)``:
 * why 0: every complete line was handed on, ``offset`` is where the first
 * incomplete one starts (``len(data)`` when there is none); why 1: the line at
 * ``offset`` needs Python (a body not seen yet, or the summary line
 * ``{"output":...``); why 2: the line at ``offset`` has no hash member.
 *
 * blocktrace.golden.stabilise._py_scan is the reference (same results, same
 * calls of ``add``); BLOCKTRACE_PURE=1 runs it.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "linekinds.h" /* the summary's first bytes are the format's */
#include "members.h"   /* and the hash member's spelling */

/* Whether the ``nlen`` bytes of ``needle`` occur in the ``len`` bytes at ``hay``. */
static int
contains(const char *hay, Py_ssize_t len, const char *needle, Py_ssize_t nlen)
{
    const char *end = hay + len - nlen + 1; /* the last place a match can start, + 1 */
    const char *at = hay;
    while (at < end) {
        at = memchr(at, needle[0], (size_t)(end - at));
        if (at == NULL) {
            return 0;
        }
        if (memcmp(at, needle, (size_t)nlen) == 0) {
            return 1;
        }
        at++;
    }
    return 0;
}

static int
has_probe(const char *body, Py_ssize_t len, PyObject *probes)
{
    Py_ssize_t n = PyTuple_GET_SIZE(probes);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyTuple_GET_ITEM(probes, i);
        Py_ssize_t plen = PyBytes_GET_SIZE(p);
        if (plen == 0 || plen > len) {
            continue;
        }
        if (contains(body, len, PyBytes_AS_STRING(p), plen)) {
            return 1;
        }
    }
    return 0;
}

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "scan(data, start, probes, seen, add)");
        return NULL;
    }
    PyObject *probes = args[2], *seen = args[3], *add = args[4];
    if (probes != Py_None) {
        if (!PyTuple_Check(probes)) {
            PyErr_SetString(PyExc_TypeError, "probes must be a tuple of bytes or None");
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(probes); i++) {
            if (!PyBytes_Check(PyTuple_GET_ITEM(probes, i))) {
                PyErr_SetString(PyExc_TypeError, "probes must be a tuple of bytes or None");
                return NULL;
            }
        }
    }
    if (!PyDict_Check(seen)) {
        PyErr_SetString(PyExc_TypeError, "seen must be a dict");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *data = (const char *)view.buf;
    Py_ssize_t size = view.len;
    int why = 0;
    if (pos < 0 || pos > size) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start is outside data");
        return NULL;
    }
    while (pos < size) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', (size_t)(size - pos));
        if (nl == NULL) {
            break; /* an incomplete line: the caller reads on */
        }
        Py_ssize_t len = nl - line; /* without the newline */
        Py_ssize_t blen = bt_hash_body_len((const uint8_t *)line, (size_t)len);
        if (blen < 0) {
            why = 2;
            break;
        }
        if (blen >= (Py_ssize_t)LINE_SUMMARY_PREFIX_LEN
            && memcmp(line, LINE_SUMMARY_PREFIX, LINE_SUMMARY_PREFIX_LEN) == 0) {
            why = 1;
            break;
        }
        PyObject *body = PyBytes_FromStringAndSize(line, blen);
        if (body == NULL) {
            goto error;
        }
        PyObject *out = body;
        if (probes == Py_None || has_probe(line, blen, probes)) {
            PyObject *done = PyDict_GetItemWithError(seen, body); /* borrowed */
            if (done == NULL) {
                Py_DECREF(body);
                if (PyErr_Occurred()) {
                    goto error;
                }
                why = 1;
                break;
            }
            out = done;
        }
        PyObject *r = PyObject_CallOneArg(add, out);
        Py_DECREF(body);
        if (r == NULL) {
            goto error;
        }
        Py_DECREF(r);
        pos += len + 1;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(ni)", pos, why);
error:
    PyBuffer_Release(&view);
    return NULL;
}

/* known(body, probes, seen) -> bytes | None: the golden form of one line's
 * body when Python has nothing to do for it: ``body`` itself when none of
 * ``probes`` occurs in it, ``seen[body]`` when it was rewritten before; None
 * otherwise (Python rewrites it).  The one-line form of ``scan``'s test, for a
 * writer of golden lines (golden.record._GoldenTracer._line). */
static PyObject *
known(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyTuple_Check(args[1])
        || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "known(body: bytes, probes: tuple, seen: dict)");
        return NULL;
    }
    PyObject *body = args[0], *probes = args[1];
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(probes); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(probes, i))) {
            PyErr_SetString(PyExc_TypeError, "probes must be a tuple of bytes");
            return NULL;
        }
    }
    if (!has_probe(PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body), probes)) {
        return Py_NewRef(body);
    }
    PyObject *done = PyDict_GetItemWithError(args[2], body); /* borrowed */
    if (done != NULL) {
        return Py_NewRef(done);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* unsettled(data, probes) -> bool: whether one of ``probes`` (a tuple of bytes)
 * occurs in ``data``, or `` at 0x`` followed by a hex digit (an address not in
 * golden form yet); Normaliser.unsettled's search (its reference is in Python). */
static PyObject *
unsettled(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char AT[] = " at 0x";
    if (nargs != 2 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "unsettled(data, probes: tuple of bytes)");
        return NULL;
    }
    PyObject *probes = args[1];
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(probes); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(probes, i))) {
            PyErr_SetString(PyExc_TypeError, "probes must be a tuple of bytes");
            return NULL;
        }
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *data = (const char *)view.buf;
    size_t size = (size_t)view.len;
    int found = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(probes) && !found; i++) {
        PyObject *p = PyTuple_GET_ITEM(probes, i);
        size_t plen = (size_t)PyBytes_GET_SIZE(p);
        found = plen > 0 && memmem(data, size, PyBytes_AS_STRING(p), plen) != NULL;
    }
    const char *at = data, *end = data + size;
    while (!found) {
        at = memmem(at, (size_t)(end - at), AT, sizeof AT - 1);
        if (at == NULL) {
            break;
        }
        at += sizeof AT - 1;
        found = at < end && isxdigit((unsigned char)*at);
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

/* -- the spawn watch of a recording (golden.record._SpawnWatch) -------------
 *
 * An audit hook (process-wide, never removed) that, while armed, notes the
 * first event that starts a process.  The Python hook it replaces was called
 * for every audit event of the traced test -- ``builtins.id`` too, which the
 * stepper's Python path raises once per event; this one returns at once
 * unless armed and the event is one of SPAWN_EVENTS.  ``_SpawnWatch._hook`` is
 * the reference (same note; BLOCKTRACE_PURE=1 runs it). */

static const char *const SPAWN_EVENTS[] = {
    "subprocess.Popen", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
    "os.system", "os.startfile", "pty.spawn", NULL,
};
static int spawn_installed = 0;
static int spawn_armed = 0;
static int spawn_found = 0;
static char spawn_note[256]; /* "<event> <repr of what>", UTF-8, cut at 200 characters later */

static int
spawn_hook(const char *event, PyObject *args, void *data)
{
    (void)data;
    if (!spawn_armed || spawn_found) {
        return 0;
    }
    int hit = 0;
    for (int i = 0; SPAWN_EVENTS[i] != NULL && !hit; i++) {
        hit = strcmp(event, SPAWN_EVENTS[i]) == 0;
    }
    if (!hit) {
        return 0;
    }
    spawn_found = 1;
    snprintf(spawn_note, sizeof spawn_note, "%s", event);
    PyObject *what = NULL;
    if (PyTuple_Check(args)) {
        what = strcmp(event, "subprocess.Popen") == 0 && PyTuple_GET_SIZE(args) > 1
            ? Py_NewRef(PyTuple_GET_ITEM(args, 1)) : PyTuple_GetSlice(args, 0, 1);
    }
    PyObject *text = what == NULL ? NULL : PyUnicode_FromFormat("%s %R", event, what);
    Py_XDECREF(what);
    const char *utf8 = text == NULL ? NULL : PyUnicode_AsUTF8(text);
    if (utf8 != NULL) {
        snprintf(spawn_note, sizeof spawn_note, "%s", utf8);
    }
    Py_XDECREF(text);
    PyErr_Clear(); /* a repr that fails leaves the event's name: the program's call goes on */
    return 0;
}

/* spawn_watch(on) -> str | None: arm (True: installs the hook the first time,
 * forgets what it saw) or disarm (False: returns what it saw, or None). */
static PyObject *
spawn_watch(PyObject *module, PyObject *on)
{
    int arm = PyObject_IsTrue(on);
    if (arm < 0) {
        return NULL;
    }
    if (arm) {
        if (!spawn_installed) {
            if (PySys_AddAuditHook(spawn_hook, NULL) < 0) {
                return NULL;
            }
            spawn_installed = 1;
        }
        spawn_found = 0;
        spawn_armed = 1;
        Py_RETURN_NONE;
    }
    spawn_armed = 0;
    if (!spawn_found) {
        Py_RETURN_NONE;
    }
    spawn_found = 0;
    return PyUnicode_DecodeUTF8(spawn_note, (Py_ssize_t)strlen(spawn_note), "replace");
}

static PyMethodDef stabilise_methods[] = {
    {"spawn_watch", spawn_watch, METH_O,
     "spawn_watch(on) -> str | None: arm the process-start watch (True), or disarm it and "
     "get what it saw (False)."},
    {"known", (PyCFunction)(void (*)(void))known, METH_FASTCALL,
     "known(body, probes, seen) -> bytes | None: body when no probe occurs in it, "
     "seen[body] when it was rewritten before, else None."},
    {"unsettled", (PyCFunction)(void (*)(void))unsettled, METH_FASTCALL,
     "unsettled(data, probes) -> bool: a probe or an address (' at 0x' and a hex digit) "
     "occurs in data."},
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(data, start, probes, seen, add) -> (offset, why): hand the bodies of data's "
     "lines from start to add while Python has nothing to do for them (see the module)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot stabilise_slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef stabilise_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.golden._cstabilise",
    .m_doc = "The per-line loop of the golden form (blocktrace.golden.stabilise), in C.",
    .m_size = 0,
    .m_methods = stabilise_methods,
    .m_slots = stabilise_slots,
};

PyMODINIT_FUNC
PyInit__cstabilise(void)
{
    return PyModuleDef_Init(&stabilise_module);
}

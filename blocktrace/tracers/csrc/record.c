/* blocktrace.tracers._crecord: the Recorder's log in C.
 *
 * Log(return_type) keeps a traced run's events in order as compact records, and
 * is a sink (events/csrc/sink.h): the stepper's C hooks hand it an OpStart, a
 * call's CallStart and a return's pieces as plain values, with no Python call
 * and no Python object per event.  A return is kept as its pieces (code index,
 * offset, value) and made a ``return_type("return", code, pc, value)`` only when
 * read.  What it gives back, ``entries(start)``, is exactly what the Recorder's
 * Python log holds: one (event, depth, gas, thread) tuple per event.
 *
 *     op(event, gas, depth)   an OpStart (thread 1); True
 *     append(entry)           an event the tracer was called with: the tuple as it is
 *     line(body)              the call-lines method the hooks recognise; from Python
 *                             it refuses (a Recorder keeps events, not lines)
 *     entries(start)          the tuples from start on
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <limits.h>

#include "sink.h"
#include "pyutil.h"

enum { R_TUPLE, R_EVENT, R_RETURN };

/* 32 bytes: a run's log is most of what recording with a Recorder touches. */
typedef struct {
    PyObject *obj; /* R_TUPLE: the entry; R_EVENT: the event; R_RETURN: the value */
    long long gas;
    int32_t depth;
    int32_t code, pc; /* R_RETURN */
    int32_t kind;
} record_t;

static inline int
fits32(long long v)
{
    return v >= INT32_MIN && v <= INT32_MAX;
}

typedef struct {
    PyObject_HEAD
    PyObject *return_type;
    PyObject *str_return; /* "return" */
    record_t *recs;
    Py_ssize_t len, cap;
} Log;

static record_t *
log_claim(Log *self)
{
    if (self->len == self->cap) {
        Py_ssize_t cap = self->cap ? self->cap * 2 : 1024;
        if ((size_t)cap > PY_SSIZE_T_MAX / sizeof(record_t)) {
            PyErr_NoMemory();
            return NULL;
        }
        record_t *grown = PyMem_Realloc(self->recs, (size_t)cap * sizeof(record_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        self->recs = grown;
        self->cap = cap;
    }
    return &self->recs[self->len];
}

static int log_append_tuple(Log *self, PyObject *entry);

/* (event, depth, gas, 1) as a tuple: what does not fit a record. */
static int
log_append_values(Log *self, PyObject *event, long long depth, long long gas)
{
    PyObject *d = PyLong_FromLongLong(depth);
    PyObject *g = d == NULL ? NULL : PyLong_FromLongLong(gas);
    PyObject *one = g == NULL ? NULL : PyLong_FromLong(1);
    PyObject *entry = one == NULL ? NULL : PyTuple_Pack(4, event, d, g, one);
    Py_XDECREF(d);
    Py_XDECREF(g);
    Py_XDECREF(one);
    int done = entry == NULL ? -1 : log_append_tuple(self, entry);
    Py_XDECREF(entry);
    return done;
}

/* An event of the stepper's (an OpStart or CallStart: only ints and strs in
 * it) with its depth and gas (thread 1). */
static int
api_event(PyObject *sink, PyObject *event, long long gas, long long depth)
{
    Log *self = (Log *)sink;
    if (!fits32(depth)) {
        return log_append_values(self, event, depth, gas);
    }
    record_t *r = log_claim(self);
    if (r == NULL) {
        return -1;
    }
    r->obj = Py_NewRef(event);
    r->gas = gas;
    r->depth = (int32_t)depth;
    r->kind = R_EVENT;
    self->len++;
    return 0;
}

static int
api_op(PyObject *sink, PyObject *event, long long gas, long long depth)
{
    return api_event(sink, event, gas, depth) < 0 ? -1 : 1;
}

static int
api_ret(PyObject *sink, long long code, long long pc, PyObject *value, long long gas,
        long long depth)
{
    Log *self = (Log *)sink;
    if (!fits32(depth) || !fits32(code) || !fits32(pc)) { /* the Return made now */
        PyObject *c = PyLong_FromLongLong(code);
        PyObject *o = c == NULL ? NULL : PyLong_FromLongLong(pc);
        PyObject *event = o == NULL ? NULL
            : PyObject_CallFunctionObjArgs(self->return_type, self->str_return, c, o, value, NULL);
        Py_XDECREF(c);
        Py_XDECREF(o);
        int done = event == NULL ? -1 : log_append_values(self, event, depth, gas);
        Py_XDECREF(event);
        return done;
    }
    record_t *r = log_claim(self);
    if (r == NULL) {
        return -1;
    }
    r->obj = Py_NewRef(value);
    r->gas = gas;
    r->depth = (int32_t)depth;
    r->code = (int32_t)code;
    r->pc = (int32_t)pc;
    r->kind = R_RETURN;
    self->len++;
    return 0;
}

static int
log_append_tuple(Log *self, PyObject *entry)
{
    record_t *r = log_claim(self);
    if (r == NULL) {
        return -1;
    }
    r->obj = Py_NewRef(entry);
    r->kind = R_TUPLE;
    self->len++;
    return 0;
}

/* op(event, gas, depth) -> True */
static PyObject *
log_op(Log *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "op() takes 3 arguments (event, gas, depth), %zd given",
                     nargs);
        return NULL;
    }
    long long v[2];
    int plain = 1;
    for (int i = 0; i < 2 && plain; i++) {
        int overflow = 1;
        if (PyLong_CheckExact(args[1 + i])) {
            v[i] = PyLong_AsLongLongAndOverflow(args[1 + i], &overflow);
        }
        plain = overflow == 0;
    }
    int done;
    if (plain) { /* any object may come this way: a tuple, which the GC visits */
        done = log_append_values(self, args[0], v[1], v[0]);
    }
    else { /* kept as given */
        PyObject *one = PyLong_FromLong(1);
        PyObject *entry = one == NULL ? NULL : PyTuple_Pack(4, args[0], args[2], args[1], one);
        Py_XDECREF(one);
        done = entry == NULL ? -1 : log_append_tuple(self, entry);
        Py_XDECREF(entry);
    }
    if (done < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
log_append(Log *self, PyObject *entry)
{
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 4) {
        PyErr_SetString(PyExc_TypeError, "append() takes an (event, depth, gas, thread) tuple");
        return NULL;
    }
    if (log_append_tuple(self, entry) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
log_line(Log *self, PyObject *body)
{
    (void)self;
    (void)body;
    PyErr_SetString(PyExc_TypeError,
                    "a Recorder keeps calls and returns as events, not lines (only the "
                    "stepper's C call hooks use this entry)");
    return NULL;
}

/* entries(start): the (event, depth, gas, thread) tuples from start on. */
static PyObject *
log_entries(Log *self, PyObject *arg)
{
    Py_ssize_t start = PyLong_AsSsize_t(arg);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (start < 0 || start > self->len) {
        start = start < 0 ? 0 : self->len;
    }
    PyObject *out = PyList_New(self->len - start);
    if (out == NULL) {
        return NULL;
    }
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    /* self->len is read once: the return type's code may record more events (it
     * runs no tracer code, but a traced program's return_type could) */
    Py_ssize_t end = PyList_GET_SIZE(out) + start;
    for (Py_ssize_t i = start; i < end; i++) {
        if (i >= self->len) { /* cleared meanwhile */
            Py_DECREF(one);
            Py_DECREF(out);
            PyErr_SetString(PyExc_RuntimeError, "the log was cleared while it was read");
            return NULL;
        }
        record_t r = self->recs[i];
        PyObject *entry;
        if (r.kind == R_TUPLE) {
            entry = Py_NewRef(r.obj);
        }
        else {
            PyObject *event;
            Py_INCREF(r.obj);
            if (r.kind == R_EVENT) {
                event = r.obj;
            }
            else {
                PyObject *code = PyLong_FromLongLong(r.code);
                PyObject *pc = PyLong_FromLongLong(r.pc);
                event = code == NULL || pc == NULL ? NULL
                    : PyObject_CallFunctionObjArgs(self->return_type, self->str_return, code, pc,
                                                   r.obj, NULL);
                Py_XDECREF(code);
                Py_XDECREF(pc);
                Py_DECREF(r.obj);
            }
            PyObject *depth = event == NULL ? NULL : PyLong_FromLongLong(r.depth);
            PyObject *gas = depth == NULL ? NULL : PyLong_FromLongLong(r.gas);
            entry = gas == NULL ? NULL : PyTuple_Pack(4, event, depth, gas, one);
            Py_XDECREF(event);
            Py_XDECREF(depth);
            Py_XDECREF(gas);
        }
        if (entry == NULL) {
            Py_DECREF(one);
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i - start, entry);
    }
    Py_DECREF(one);
    return out;
}

static Py_ssize_t
log_length(Log *self)
{
    return self->len;
}

static PyObject *
log_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"return_type", NULL};
    PyObject *return_type;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Log", kwlist, &return_type)) {
        return NULL;
    }
    if (!PyCallable_Check(return_type)) {
        PyErr_SetString(PyExc_TypeError, "Log: return_type must be callable");
        return NULL;
    }
    PyObject *name = PyUnicode_InternFromString("return");
    if (name == NULL) {
        return NULL;
    }
    Log *self = (Log *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    self->return_type = Py_NewRef(return_type);
    self->str_return = name;
    self->recs = NULL;
    self->len = self->cap = 0;
    return (PyObject *)self;
}

static int
log_traverse(Log *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->return_type);
    /* The stepper's events (R_EVENT: OpStart and CallStart sites, which hold only
     * ints and strs) cannot be in a cycle with the log: not visited, so that a
     * collection does not walk a whole run's instructions.  Return values and
     * tuples from Python may be. */
    for (Py_ssize_t i = 0; i < self->len; i++) {
        if (self->recs[i].kind != R_EVENT) {
            Py_VISIT(self->recs[i].obj);
        }
    }
    return 0;
}

static int
log_clear(Log *self)
{
    /* empty first, then drop the references (which may run code) */
    record_t *recs = self->recs;
    Py_ssize_t len = self->len;
    self->recs = NULL;
    self->len = self->cap = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        Py_DECREF(recs[i].obj);
    }
    PyMem_Free(recs);
    Py_CLEAR(self->return_type);
    Py_CLEAR(self->str_return);
    return 0;
}

static void
log_dealloc(Log *self)
{
    PyObject_GC_UnTrack(self);
    log_clear(self);
    bt_free_instance((PyObject *)self);
}

static PyMethodDef log_methods[] = {
    {"op", (PyCFunction)(void (*)(void))log_op, METH_FASTCALL,
     "op($self, event, gas, depth, /)\n--\n\nKeep an OpStart with this gas and depth "
     "(thread 1); True."},
    {"append", (PyCFunction)log_append, METH_O,
     "append($self, entry, /)\n--\n\nKeep an (event, depth, gas, thread) tuple as it is."},
    {"line", (PyCFunction)log_line, METH_O,
     "line($self, body, /)\n--\n\nThe entry the stepper's C call hooks hand calls and returns "
     "to as values; called from Python it refuses (TypeError)."},
    {"entries", (PyCFunction)log_entries, METH_O,
     "entries($self, start, /)\n--\n\nThe (event, depth, gas, thread) tuples from start on."},
    {NULL, NULL, 0, NULL},
};

static const bt_sink_api log_sink = {
    .op_meth = (PyCFunction)(void (*)(void))log_op,
    .op = api_op,
    .line_meth = (PyCFunction)log_line,
    .line = NULL,
    .call = api_event,
    .ret = api_ret,
};

PyDoc_STRVAR(log_doc,
"Log(return_type)\n"
"--\n\n"
"The Recorder's events as compact records (see blocktrace/tracers/csrc/record.c);\n"
"a sink the stepper's C hooks hand ops, calls and returns as plain values.");

static PyType_Slot log_slots[] = {
    {Py_tp_new, log_new},
    {Py_tp_dealloc, log_dealloc},
    {Py_tp_traverse, log_traverse},
    {Py_tp_clear, log_clear},
    {Py_tp_methods, log_methods},
    {Py_sq_length, log_length},
    {Py_tp_doc, (void *)log_doc},
    {0, NULL},
};

static PyType_Spec log_spec = {
    .name = "blocktrace.tracers._crecord.Log",
    .basicsize = sizeof(Log),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = log_slots,
};

static int
crecord_exec(PyObject *m)
{
    PyObject *type = PyType_FromModuleAndSpec(m, &log_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    PyObject *api = PyCapsule_New((void *)&log_sink, BT_SINK_CAPSULE, NULL);
    PyObject *dict = api == NULL ? NULL : PyType_GetDict((PyTypeObject *)type);
    int done = dict == NULL ? -1 : PyDict_SetItemString(dict, "_sink_api", api);
    Py_XDECREF(dict);
    Py_XDECREF(api);
    if (done == 0) {
        PyType_Modified((PyTypeObject *)type);
        done = PyModule_AddObjectRef(m, "Log", type);
    }
    Py_DECREF(type);
    return done;
}

static PyModuleDef_Slot crecord_slots[] = {
    {Py_mod_exec, crecord_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef crecord_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.tracers._crecord",
    .m_doc = "The Recorder's log in C: a sink the stepper's C hooks append to.",
    .m_size = 0,
    .m_slots = crecord_slots,
};

PyMODINIT_FUNC
PyInit__crecord(void)
{
    return PyModuleDef_Init(&crecord_module);
}

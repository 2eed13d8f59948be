/* blocktrace.views.blocks._cvalues: two helpers of the BlockTrace view, in C.
 *
 * plain_values(mapping): a frame's locals copied into a new dict when every
 * one shows the same in a block and in the standard trace (so they need no
 * rendering), else None.
 *
 * watch(d) / epoch(): whether a module's globals changed since
 * they were last shown, through a dict watcher (PyDict_AddWatcher, the public
 * API since 3.12): every change to a watched dict -- a key added, replaced or
 * deleted, the dict cleared, cloned into or deallocated -- bumps one epoch,
 * so a dict whose epoch is the one watch() returned has not changed since.
 * The epoch is process-wide (a watcher callback is told no more than the
 * dict) and only moves forward: a change to any watched dict makes every
 * other one look changed too, which costs a re-check, never a wrong answer.
 *
 * The module keeps its watcher id in its state (multi-phase init): each
 * interpreter that imports it has its own.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>

/* The epoch every watched change bumps (atomic: interpreters with their own
 * GIL may bump it at once). */
static uint64_t globals_epoch = 1;

typedef struct {
    int watching;   /* 0: no dict watcher could be had (or not yet); watch() says None */
    int watcher_id; /* ours, when watching */
} values_state;

static inline values_state *
get_state(PyObject *module)
{
    return (values_state *)PyModule_GetState(module);
}

static int
dict_changed(PyDict_WatchEvent event, PyObject *dict, PyObject *key, PyObject *new_value)
{
    (void)event;
    (void)dict;
    (void)key;
    (void)new_value;
    __atomic_add_fetch(&globals_epoch, 1, __ATOMIC_RELAXED);
    return 0;
}

static PyObject *
current_epoch(void)
{
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&globals_epoch, __ATOMIC_RELAXED));
}

/* watch(d): watch the exact dict d; the current epoch, or None when d cannot
 * be watched (not an exact dict, or no watcher id was free). */
static PyObject *
watch(PyObject *module, PyObject *dict)
{
    values_state *st = get_state(module);
    if (!st->watching || !PyDict_CheckExact(dict)) {
        Py_RETURN_NONE;
    }
    if (PyDict_Watch(st->watcher_id, dict) < 0) {
        return NULL;
    }
    return current_epoch();
}

static PyObject *
epoch(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return current_epoch();
}

/* A value that shows the same in a BlockTrace block and in the standard trace:
 * an int in (-2**63, 2**63), a finite float, None, a bool (the exact types). */
static int
plain_value(PyObject *v)
{
    if (v == Py_None || PyBool_Check(v)) {
        return 1;
    }
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        return overflow == 0 && x != LLONG_MIN;
    }
    if (PyFloat_CheckExact(v)) {
        return isfinite(PyFloat_AS_DOUBLE(v));
    }
    return 0;
}

static int
plain_key(PyObject *k)
{
    return PyUnicode_CheckExact(k) && PyUnicode_CompareWithASCIIString(k, "__builtins__") != 0;
}

/* plain_values(mapping): a new dict of mapping's items when every key is a str
 * (not "__builtins__") and every value plain; else None, and the caller
 * renders them one by one.  A dict is read without running Python code;
 * another mapping (a frame's f_locals proxy) through its items(). */
static PyObject *
plain_values(PyObject *module, PyObject *mapping)
{
    (void)module;
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    if (PyDict_CheckExact(mapping)) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(mapping, &pos, &k, &v)) {
            if (!plain_key(k) || !plain_value(v)) {
                goto not_plain;
            }
            if (PyDict_SetItem(out, k, v) < 0) {
                goto error;
            }
        }
        return out;
    }
    PyObject *items = PyMapping_Items(mapping);
    if (items == NULL) {
        goto error;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2
            || !plain_key(PyTuple_GET_ITEM(pair, 0)) || !plain_value(PyTuple_GET_ITEM(pair, 1))) {
            Py_DECREF(items);
            goto not_plain;
        }
        if (PyDict_SetItem(out, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
            Py_DECREF(items);
            goto error;
        }
    }
    Py_DECREF(items);
    return out;
not_plain:
    Py_DECREF(out);
    Py_RETURN_NONE;
error:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef values_methods[] = {
    {"plain_values", (PyCFunction)plain_values, METH_O,
     "plain_values(mapping, /)\n--\n\nA new dict of the items when every key is a str (not "
     "'__builtins__') and every value an int in (-2**63, 2**63), a finite float, None or a bool "
     "(exact types); else None."},
    {"watch", (PyCFunction)watch, METH_O,
     "watch(d, /)\n--\n\nWatch the exact dict d for changes; the current epoch, or None when it "
     "cannot be watched."},
    {"epoch", (PyCFunction)epoch, METH_NOARGS,
     "epoch()\n--\n\nThe current epoch: it moves on every change to any watched dict."},
    {NULL, NULL, 0, NULL},
};

static int
values_exec(PyObject *module)
{
    values_state *st = get_state(module);
    int id = PyDict_AddWatcher(dict_changed);
    if (id < 0) {
        PyErr_Clear(); /* every dict watcher id is taken: globals are compared instead */
    }
    else {
        st->watcher_id = id;
        st->watching = 1;
    }
    return PyModule_AddIntConstant(module, "WATCHING", st->watching);
}

static void
values_free(void *module)
{
    values_state *st = get_state((PyObject *)module);
    if (st != NULL && st->watching) {
        /* dicts still marked with the id call nothing once it is cleared */
        st->watching = 0;
        if (PyDict_ClearWatcher(st->watcher_id) < 0) {
            PyErr_WriteUnraisable((PyObject *)module);
        }
    }
}

static PyModuleDef_Slot values_slots[] = {
    {Py_mod_exec, values_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef values_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.views.blocks._cvalues",
    .m_doc = "Helpers of the BlockTrace view in C: plain locals, and a dict watcher for globals.",
    .m_size = sizeof(values_state),
    .m_methods = values_methods,
    .m_slots = values_slots,
    .m_free = values_free,
};

PyMODINIT_FUNC
PyInit__cvalues(void)
{
    return PyModuleDef_Init(&values_module);
}

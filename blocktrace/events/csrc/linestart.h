/* A line start with values written without a call: the stepper's instruction
 * hook (blocktrace/vm/_chook.c) and a tracer's ``fast_call`` that records values
 * (``blocktrace.tracers._cvalues.LineStart``) meet here.
 *
 * The fast_call's type carries a class attribute ``_line_start_api``: a
 * PyCapsule named BT_LINE_START_CAPSULE whose pointer is a static
 * bt_line_start_api.  When the hook's op line (a sink's op, events/csrc/sink.h)
 * did not take an instruction's event and its tracer is such a fast_call, the
 * hook calls ``line_start`` with the gas and depth it holds as C values
 * instead of calling ``tracer(vm, event)`` (which would read them from vm);
 * 0 means "not one of mine": the hook then calls the tracer as usual.
 * Called with the GIL held.
 */

#ifndef BT_LINESTART_H
#define BT_LINESTART_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define BT_LINE_START_CAPSULE "blocktrace.events.line_start.v1"

typedef struct {
    /* 1 written (what tracer(vm, event) would have done), 0 not handled
     * (nothing done: the caller calls the tracer), -1 error. */
    int (*line_start)(PyObject *fast_call, PyObject *vm, PyObject *event, long long gas,
                      long long depth);
} bt_line_start_api;

/* The api of `tracer` when its type says it has one; NULL (no exception) else. */
static inline const bt_line_start_api *
bt_line_start_of(PyObject *tracer)
{
    if (tracer == NULL) {
        return NULL;
    }
    PyObject *dict = PyType_GetDict(Py_TYPE(tracer));
    if (dict == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *capsule = PyDict_GetItemString(dict, "_line_start_api"); /* borrowed, no error */
    const bt_line_start_api *api = NULL;
    if (capsule != NULL && PyCapsule_IsValid(capsule, BT_LINE_START_CAPSULE)) {
        api = PyCapsule_GetPointer(capsule, BT_LINE_START_CAPSULE);
    }
    Py_DECREF(dict);
    if (api == NULL) {
        PyErr_Clear();
    }
    return api;
}

#endif

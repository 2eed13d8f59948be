/* A sink: what takes a traced run's events from the stepper's C hooks as plain
 * values, with no Python call and no Python object per event.
 *
 * A sink's type carries a class attribute ``_sink_api``: a PyCapsule named
 * BT_SINK_CAPSULE whose pointer is a static bt_sink_api.  The stepper's hooks
 * (blocktrace/vm/_chook.c) are handed a tracer's ``op_line`` and
 * ``call_lines[0]`` (see blocktrace.tracers.Capabilities) as usual; when one is
 * a builtin method bound to a sink whose api names that very method (``op_meth``,
 * ``line_meth``), they call the api's C function instead: the same effects,
 * the same answer, without making the call.
 *
 * Every entry is called with the GIL held and returns -1 with an exception
 * set on error.  It lives with the events because every layer may include it:
 * the line writer (chain/), the Recorder's log (tracers/) and the hooks (vm/).
 */

#ifndef BT_SINK_H
#define BT_SINK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#define BT_SINK_CAPSULE "blocktrace.events.sink.v1"

typedef struct {
    /* op_meth(event, gas, depth) as plain values: 1 handled (the method would
     * have returned True), 0 not (False: nothing done; the caller calls the
     * tracer), -1 error. */
    PyCFunction op_meth;
    int (*op)(PyObject *sink, PyObject *event, long long gas, long long depth);
    /* line_meth(body): a call or return line's body (no newline); 0 or -1.
     * NULL when the sink takes calls and returns as values (call, ret). */
    PyCFunction line_meth;
    int (*line)(PyObject *sink, const char *body, size_t len);
    /* In place of line, for a sink that keeps events: a call (``event`` the
     * code object's CallStart, depth after entering, gas left) and a return
     * (the code's index, the offset returned from, the value, gas, depth
     * before leaving); 0 or -1. */
    int (*call)(PyObject *sink, PyObject *event, long long gas, long long depth);
    int (*ret)(PyObject *sink, long long code, long long pc, PyObject *value, long long gas,
               long long depth);
} bt_sink_api;

/* The api of `meth` when it is a builtin method bound to a sink and is the
 * api's op_meth (which 0) or line_meth (which 1); *sink set (borrowed).
 * NULL, without an exception, otherwise. */
static inline const bt_sink_api *
bt_sink_of(PyObject *meth, int which, PyObject **sink)
{
    if (meth == NULL || !PyCFunction_Check(meth)) {
        return NULL;
    }
    PyObject *self = PyCFunction_GET_SELF(meth);
    if (self == NULL || PyModule_Check(self)) {
        return NULL;
    }
    PyObject *dict = PyType_GetDict(Py_TYPE(self));
    if (dict == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *capsule = PyDict_GetItemString(dict, "_sink_api"); /* borrowed, no error */
    const bt_sink_api *api = NULL;
    if (capsule != NULL && PyCapsule_IsValid(capsule, BT_SINK_CAPSULE)) {
        api = PyCapsule_GetPointer(capsule, BT_SINK_CAPSULE);
    }
    Py_DECREF(dict);
    if (api == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyCFunction f = PyCFunction_GET_FUNCTION(meth);
    if (which == 0 ? (api->op == NULL || f != api->op_meth)
                   : ((api->line == NULL && (api->call == NULL || api->ret == NULL))
                      || f != api->line_meth)) {
        return NULL;
    }
    *sink = self;
    return api;
}

#endif /* BT_SINK_H */

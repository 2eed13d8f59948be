/* What blocktrace's C extensions do alike with CPython's C API: an argument count, the error
 * exit of a function that holds a buffer, the end of a heap type's dealloc, a type added to
 * its module.  Static inline: each extension has its own copy (setup.py builds them with
 * -fvisibility=hidden).  Include after <Python.h> (with PY_SSIZE_T_CLEAN). */
#ifndef BLOCKTRACE_PYUTIL_H
#define BLOCKTRACE_PYUTIL_H

#include <Python.h>

/* A METH_FASTCALL function's argument count: 1 when it is n, else TypeError `usage`, 0. */
static inline int
bt_nargs(Py_ssize_t nargs, Py_ssize_t n, const char *usage)
{
    if (nargs == n) {
        return 1;
    }
    PyErr_SetString(PyExc_TypeError, usage);
    return 0;
}

/* Releases view and raises exc(message): NULL, for a function that holds a buffer. */
static inline PyObject *
bt_release_raise(Py_buffer *view, PyObject *exc, const char *message)
{
    PyBuffer_Release(view);
    PyErr_SetString(exc, message);
    return NULL;
}

/* The end of a heap type's tp_dealloc, once what the object holds is freed: its memory,
 * then the reference to its type that each instance of a heap type owns. */
static inline void
bt_free_instance(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* A module's exec: the heap type of spec, added to module m as name. 0, or -1 with an
 * exception set. */
static inline int
bt_add_type(PyObject *m, PyType_Spec *spec, const char *name)
{
    PyObject *type = PyType_FromModuleAndSpec(m, spec, NULL);
    if (type == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(m, name, type);
    Py_DECREF(type);
    return rc;
}

#endif

/* The output buffer (see buffer.h). */

#include "buffer.h"

/* `write` raised: it took nothing, unless the exception says how much in
 * `characters_written` (BlockingIOError's convention), 0 < it <= n. */
static void
drop_written_on_error(line_buffer *b, size_t n)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *cw = PyObject_GetAttrString(exc, "characters_written");
    if (cw == NULL) {
        PyErr_Clear();
    }
    else {
        if (PyLong_Check(cw)) {
            Py_ssize_t k = PyLong_AsSsize_t(cw);
            if (k == -1 && PyErr_Occurred()) {
                PyErr_Clear();
            }
            else if (k > 0 && (size_t)k <= n) {
                memmove(b->buf, b->buf + k, b->len - (size_t)k);
                b->len -= (size_t)k;
            }
        }
        Py_DECREF(cw);
    }
    PyErr_SetRaisedException(exc);
}

int
buffer_flush(line_buffer *b, PyObject *write)
{
    if (b->flushing) {
        return 0;
    }
    b->flushing = 1;
    while (b->len > 0) {
        size_t n = b->len;
        PyObject *chunk = PyBytes_FromStringAndSize(b->buf, (Py_ssize_t)n);
        if (chunk == NULL) {
            goto fail;
        }
        PyObject *res = PyObject_CallOneArg(write, chunk);
        Py_DECREF(chunk);
        if (res == NULL) {
            drop_written_on_error(b, n);
            goto fail;
        }
        size_t taken = n;
        if (PyLong_Check(res)) {
            Py_ssize_t k = PyLong_AsSsize_t(res);
            if (k == -1 && PyErr_Occurred()) {
                PyErr_Clear(); /* too big for a count: everything was taken */
            }
            else if (k >= 0 && (size_t)k < n) {
                taken = (size_t)k;
            }
        }
        Py_DECREF(res);
        if (taken == 0) { /* would loop for ever: a stream that takes nothing is broken */
            PyErr_SetString(PyExc_OSError, "the trace's write() took no bytes");
            goto fail;
        }
        /* Lines a nested call added went behind the chunk: drop only what was
         * written, from the front. */
        memmove(b->buf, b->buf + taken, b->len - taken);
        b->len -= taken;
    }
    b->flushing = 0;
    return 0;
fail:
    b->flushing = 0;
    return -1;
}

int
buffer_grow_raw(line_buffer *b, size_t need)
{
    if (need <= b->cap) {
        return 0;
    }
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need) {
        if (ncap > ((size_t)PY_SSIZE_T_MAX) / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    char *nb = realloc(b->buf, ncap);
    if (nb == NULL) {
        return -1;
    }
    b->buf = nb;
    b->cap = ncap;
    return 0;
}

int
buffer_reserve(line_buffer *b, size_t need)
{
    if (buffer_grow_raw(b, need) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

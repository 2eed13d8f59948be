/* OpColumns: the op lines of a blocktrace trace straight into column buffers, for
 * the query tables' `ops` (blocktrace/query/tables.py), without a Python object
 * per line.
 *
 * feed() takes the plain op lines the writer writes, in its order of members,
 *
 *   {"pc":N,"op":N,"gas":"0xH","gasCost":"0x1","depth":N,"opName":"NAME","line":N,
 *    "code":N[,"thread":N],"hash":"<64 hex>"}
 *
 * and stops before any other line (another kind, values, an escape, a number of
 * another form, a member it does not expect): Python decodes that one with the
 * format's Structs and, for an op line, adds its row with append().  So every row
 * is what blocktrace.format.decode_line reads from the line; this only reads it
 * sooner.  Hashes are not checked here (verify does that). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "columns.h"

enum { COL_END = 0, COL_OTHER = 1, COL_FULL = 2 };

typedef struct {
    char *p;
    size_t len, cap;
} grow_t;

static int
grow_put(grow_t *g, const void *src, size_t n)
{
    if (g->len + n > g->cap) {
        size_t cap = g->cap ? g->cap : 4096;
        while (cap < g->len + n) {
            cap *= 2;
        }
        char *more = PyMem_RawRealloc(g->p, cap);
        if (more == NULL) {
            return -1;
        }
        g->p = more;
        g->cap = cap;
    }
    memcpy(g->p + g->len, src, n);
    g->len += n;
    return 0;
}

enum { C_LINE_NO, C_THREAD, C_DEPTH, C_PC, C_OP, C_GAS, C_LINE, C_CODE, C_NAME_OFF, C_NAME,
       C_COUNT };

typedef struct {
    PyObject_HEAD
    grow_t col[C_COUNT];
    int64_t rows;
    int32_t name_end;
    int failed;
} ColumnsObject;

/* a non-negative JSON integer of at most 18 digits at *p, else -1 */
static int
read_uint(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
    const uint8_t *p = *pp;
    int64_t v = 0;
    int n = 0;
    if (p < end && *p == '0') {
        p++;
        n = 1;
    } else {
        while (p < end && *p >= '0' && *p <= '9' && n < 19) {
            v = v * 10 + (*p - '0');
            p++;
            n++;
        }
    }
    if (n == 0 || n > 18 || (p < end && *p >= '0' && *p <= '9')) {
        return -1;
    }
    *out = v;
    *pp = p;
    return 0;
}

static int
expect(const uint8_t **pp, const uint8_t *end, const char *lit, size_t n)
{
    if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0) {
        return -1;
    }
    *pp += n;
    return 0;
}

#define EXPECT(lit) expect(&p, end, lit, sizeof(lit) - 1)

/* lowercase hex digit -> value, anything else 255 (filled by columns_spec's module) */
static uint8_t HEXVAL[256];

void
columns_init_tables(void)
{
    memset(HEXVAL, 255, sizeof HEXVAL);
    for (int i = 0; i < 10; i++) {
        HEXVAL['0' + i] = (uint8_t)i;
    }
    for (int i = 0; i < 6; i++) {
        HEXVAL['a' + i] = (uint8_t)(10 + i);
    }
}

/* One plain op line [p, end) (no newline) into the columns: 0, or -1 when it is not one. */
static int
op_row(ColumnsObject *c, const uint8_t *p, const uint8_t *end, int64_t line_no)
{
    int64_t pc, op, depth, line, code, thread = 1;
    uint64_t gas = 0;
    if (EXPECT("{\"pc\":") || read_uint(&p, end, &pc) || EXPECT(",\"op\":")
        || read_uint(&p, end, &op) || EXPECT(",\"gas\":\"0x")) {
        return -1;
    }
    int digits = 0;
    while (p < end && HEXVAL[*p] != 255) {
        gas = (gas << 4) | HEXVAL[*p];
        p++;
        if (++digits > 16) {
            return -1;
        }
    }
    if (gas > (uint64_t)INT64_MAX) { /* beyond the column: Python's path says so */
        return -1;
    }
    if (digits == 0 || EXPECT("\",\"gasCost\":\"0x1\",\"depth\":") || read_uint(&p, end, &depth)
        || EXPECT(",\"opName\":\"")) {
        return -1;
    }
    const uint8_t *name = p;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
                       || (*p >= '0' && *p <= '9') || *p == '_')) {
        p++;
    }
    size_t name_len = (size_t)(p - name);
    if (EXPECT("\",\"line\":") || read_uint(&p, end, &line) || EXPECT(",\"code\":")
        || read_uint(&p, end, &code)) {
        return -1;
    }
    if (end - p > 10 && memcmp(p, ",\"thread\":", 10) == 0) {
        p += 10;
        if (read_uint(&p, end, &thread)) {
            return -1;
        }
    }
    if (EXPECT(",\"hash\":\"") || end - p != 66 || p[64] != '"' || p[65] != '}') {
        return -1;
    }
    uint8_t bad = 0;
    for (int i = 0; i < 64; i++) {
        bad |= (uint8_t)(HEXVAL[p[i]] == 255);
    }
    if (bad || depth > INT32_MAX || op > INT32_MAX || line > INT32_MAX || code > INT32_MAX
        || thread > INT32_MAX || c->name_end > INT32_MAX - (int64_t)name_len) {
        return -1;
    }
    int32_t i32;
    int64_t g = (int64_t)gas;
    c->name_end += (int32_t)name_len;
    if (grow_put(&c->col[C_LINE_NO], &line_no, 8) || grow_put(&c->col[C_PC], &pc, 8)
        || grow_put(&c->col[C_GAS], &g, 8)
        || (i32 = (int32_t)thread, grow_put(&c->col[C_THREAD], &i32, 4))
        || (i32 = (int32_t)depth, grow_put(&c->col[C_DEPTH], &i32, 4))
        || (i32 = (int32_t)op, grow_put(&c->col[C_OP], &i32, 4))
        || (i32 = (int32_t)line, grow_put(&c->col[C_LINE], &i32, 4))
        || (i32 = (int32_t)code, grow_put(&c->col[C_CODE], &i32, 4))
        || grow_put(&c->col[C_NAME], name, name_len)
        || grow_put(&c->col[C_NAME_OFF], &c->name_end, 4)) {
        c->failed = 1;
        return -1;
    }
    c->rows++;
    return 0;
}

static PyObject *
columns_feed(ColumnsObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "feed(buffer, pos, line_no, max_rows)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long long line_no = PyLong_AsLongLong(args[2]);
    long long max_rows = PyLong_AsLongLong(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (pos < 0 || pos > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos outside the buffer");
        return NULL;
    }
    const uint8_t *buf = view.buf;
    int code = COL_END;
    Py_BEGIN_ALLOW_THREADS
    while (pos < view.len) {
        if (c->rows >= max_rows) {
            code = COL_FULL;
            break;
        }
        const uint8_t *line = buf + pos;
        const uint8_t *nl = memchr(line, '\n', (size_t)(view.len - pos));
        if (nl == NULL) {
            break;
        }
        if (op_row(c, line, nl, line_no) < 0) {
            code = COL_OTHER;
            break;
        }
        pos += nl - line + 1;
        line_no++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (c->failed) {
        return PyErr_NoMemory();
    }
    return Py_BuildValue("(inL)", code, pos, line_no);
}

static PyObject *
columns_append(ColumnsObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    /* line_no, thread, depth, pc, op, opName, gas, line, code */
    if (nargs != 9 || !PyUnicode_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "append(line_no, thread, depth, pc, op, opName: str, gas, line, code)");
        return NULL;
    }
    int64_t v[9];
    for (int i = 0; i < 9; i++) {
        if (i == 5) {
            continue;
        }
        v[i] = PyLong_AsLongLong(args[i]);
        if (v[i] == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    Py_ssize_t name_len;
    const char *name = PyUnicode_AsUTF8AndSize(args[5], &name_len);
    if (name == NULL) {
        return NULL;
    }
    if (c->name_end > INT32_MAX - name_len) {
        PyErr_SetString(PyExc_OverflowError, "opName column too large for one batch");
        return NULL;
    }
    int32_t i32;
    c->name_end += (int32_t)name_len;
    if (grow_put(&c->col[C_LINE_NO], &v[0], 8) || grow_put(&c->col[C_PC], &v[3], 8)
        || grow_put(&c->col[C_GAS], &v[6], 8)
        || (i32 = (int32_t)v[1], grow_put(&c->col[C_THREAD], &i32, 4))
        || (i32 = (int32_t)v[2], grow_put(&c->col[C_DEPTH], &i32, 4))
        || (i32 = (int32_t)v[4], grow_put(&c->col[C_OP], &i32, 4))
        || (i32 = (int32_t)v[7], grow_put(&c->col[C_LINE], &i32, 4))
        || (i32 = (int32_t)v[8], grow_put(&c->col[C_CODE], &i32, 4))
        || grow_put(&c->col[C_NAME], name, (size_t)name_len)
        || grow_put(&c->col[C_NAME_OFF], &c->name_end, 4)) {
        return PyErr_NoMemory();
    }
    c->rows++;
    Py_RETURN_NONE;
}

static void
columns_reset(ColumnsObject *c)
{
    for (int i = 0; i < C_COUNT; i++) {
        c->col[i].len = 0;
    }
    c->rows = 0;
    c->name_end = 0;
    int32_t zero = 0;
    grow_put(&c->col[C_NAME_OFF], &zero, 4); /* cannot fail: the buffer only grows */
}

static PyObject *
columns_take(ColumnsObject *c, PyObject *unused)
{
    /* (rows, line_no, thread, depth, pc, op, name offsets, name data, gas, line, code) */
    static const int order[] = {C_LINE_NO, C_THREAD, C_DEPTH, C_PC, C_OP, C_NAME_OFF, C_NAME,
                                C_GAS, C_LINE, C_CODE};
    PyObject *out = PyTuple_New(11);
    if (out == NULL) {
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, PyLong_FromLongLong(c->rows));
    for (int i = 0; i < 10; i++) {
        grow_t *g = &c->col[order[i]];
        PyObject *b = PyBytes_FromStringAndSize(g->p, (Py_ssize_t)g->len);
        if (b == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i + 1, b);
    }
    if (PyTuple_GET_ITEM(out, 0) == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    columns_reset(c);
    return out;
}

static PyObject *
columns_get_rows(ColumnsObject *c, void *closure)
{
    return PyLong_FromLongLong(c->rows);
}

static int
columns_init(ColumnsObject *c, PyObject *args, PyObject *kwds)
{
    if (!PyArg_ParseTuple(args, ":OpColumns")) {
        return -1;
    }
    if (c->col[C_NAME_OFF].cap == 0) {
        int32_t zero = 0;
        if (grow_put(&c->col[C_NAME_OFF], &zero, 4) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    columns_reset(c);
    return 0;
}

static void
columns_dealloc(ColumnsObject *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    for (int i = 0; i < C_COUNT; i++) {
        PyMem_RawFree(c->col[i].p);
    }
    tp->tp_free((PyObject *)c);
    Py_DECREF(tp);
}

static PyMethodDef columns_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))columns_feed, METH_FASTCALL,
     "feed($self, buffer, pos, line_no, max_rows, /)\n--\n\nAdd the plain op lines of buffer from "
     "byte pos (line line_no); returns (stop, pos, line_no): 0 no complete line left, 1 the "
     "line at pos is for Python, 2 max_rows reached."},
    {"append", (PyCFunction)(void (*)(void))columns_append, METH_FASTCALL,
     "append($self, line_no, thread, depth, pc, op, opName, gas, line, code, /)\n--\n\nAdd one row "
     "read by Python."},
    {"take", (PyCFunction)columns_take, METH_NOARGS,
     "take($self, /)\n--\n\n(rows, line_no, thread, depth, pc, op, opName offsets, opName data, gas, "
     "line, code) as bytes (int64/int32 little-endian machine order; Arrow buffers); empties."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef columns_getset[] = {
    {"rows", (getter)columns_get_rows, NULL, "rows held", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot columns_slots[] = {
    {Py_tp_init, columns_init},
    {Py_tp_dealloc, columns_dealloc},
    {Py_tp_methods, columns_methods},
    {Py_tp_getset, columns_getset},
    {Py_tp_doc, "OpColumns()\n--\n\nThe ops table's columns, filled from op lines."},
    {0, NULL},
};

PyType_Spec columns_spec = {
    .name = "blocktrace.format._cscan.OpColumns",
    .basicsize = sizeof(ColumnsObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = columns_slots,
};

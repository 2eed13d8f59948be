/* blocktrace.chain._cwriter: the version-2 line writer in C (docs/FORMAT.md).
 *
 * Same interface and same bytes as blocktrace.chain.writer.PyLineWriter (the
 * reference): seals lines per "The hash chain" (one SHA-256 stream per leaf,
 * started with 0x00 and fed the leaf's lines as written; a leaf's first line
 * and the summary link as SHA-256(0x02 || previous hash || body)), buffers
 * them (buffer.c), and keeps the RFC 9162 Merkle tree of the leaves
 * (merkle.c).  SHA-256 is sha256.c; an op line's body is made from plain
 * values (format/csrc/opline.h: the layout is the format's) with the pieces of its site (sites.c).
 *
 * Atomicity: between starting a line and having it buffered with the chain,
 * stream and tree advanced, no Python code runs.  The only Python code the
 * writer runs is `write` (in a flush, before a line is added) and `on_leaf`.  Everything a line needs (buffer room, the pieces of a site) is
 * secured before that point; after it nothing can fail.
 *
 * The writer knows nothing of the stepper: an op line is made from plain values
 * (op(event, gas, depth)), which the stepper's hook passes.
 *
 * The module has per-module state (multi-phase init): the LineWriter type is its
 * own in each interpreter.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "buffer.h"
#include "hex.h"
#include "merkle.h"
#include "opline.h"
#include "sha256.h"
#include "sites.h"

#define TAIL_HEAD ",\"hash\":\""
#define TAIL_HEAD_LEN 9
#define TAIL_LEN (TAIL_HEAD_LEN + 64 + 3) /* ,"hash":"<64 hex>"}\n */

/* H_0 = SHA-256("blocktrace-chain/2\n"): the hash "before" the first line. */
static const uint8_t H0[32] = {
    0xe2, 0x0d, 0xd4, 0x55, 0xf9, 0x09, 0xae, 0x5c, 0x65, 0x4b, 0x06, 0xe9, 0x68, 0xa0, 0xab, 0x97,
    0x51, 0x3b, 0x2e, 0x0e, 0xfe, 0xef, 0x6e, 0x03, 0xb8, 0xb1, 0xdf, 0x88, 0x16, 0xa2, 0x14, 0x50,
};

typedef struct {
    PyTypeObject *writer_type;
} module_state;

typedef struct {
    PyObject_HEAD
    PyObject *write;
    PyObject *on_leaf; /* NULL: none */
    line_buffer out;
    int done;
    uint64_t per_leaf, in_leaf, lines;
    uint8_t prev[32];
    sha256_ctx stream;
    merkle_tree tree;
    site_table sites;
} Writer;

/* A leaf stream before its first line: fed the one byte 0x00. */
static void
fresh_stream(sha256_ctx *c)
{
    static const uint8_t zero = 0x00;
    sha256_init(c);
    sha256_update(c, &zero, 1);
}

static int
check_open(Writer *w)
{
    if (w->done) {
        PyErr_SetString(PyExc_ValueError, "the trace is sealed: no line follows the summary");
        return -1;
    }
    return 0;
}

/* Make room for a line of `total` bytes: flush first when it would not fit
 * (this runs `write`, so Python code), then grow the buffer.  After it
 * returns 0 nothing may fail or run Python code until the line is sealed. */
static int
prepare(Writer *w, size_t total)
{
    if (check_open(w) < 0) {
        return -1;
    }
    if (w->out.len > 0 && w->out.len + total > w->out.limit) {
        if (buffer_flush(&w->out, w->write) < 0) {
            return -1;
        }
        if (check_open(w) < 0) { /* sealed by code the flush ran */
            return -1;
        }
    }
    if (total > PY_SSIZE_T_MAX - w->out.len) {
        PyErr_NoMemory();
        return -1;
    }
    return buffer_reserve(&w->out, w->out.len + total);
}

/* -- sealing ------------------------------------------------------------------ */

/* The body of `blen` bytes is in the buffer at its end, with room behind it
 * for the tail.  Hash it, add the tail, advance the chain.  Cannot fail. */
static void
commit(Writer *w, size_t blen, int last)
{
    uint8_t *body = (uint8_t *)w->out.buf + w->out.len;
    uint8_t digest[32];
    if (last || w->in_leaf == 0) {
        sha256_ctx link;
        uint8_t head[33];
        head[0] = 0x02;
        memcpy(head + 1, w->prev, 32);
        sha256_init(&link);
        sha256_update(&link, head, sizeof head);
        sha256_update(&link, body, blen);
        sha256_digest(&link, digest);
        if (!last) {
            sha256_update(&w->stream, body, blen);
        }
    }
    else {
        sha256_update(&w->stream, body, blen);
        sha256_digest(&w->stream, digest);
    }
    char *tail = (char *)body + blen;
    memcpy(tail, TAIL_HEAD, TAIL_HEAD_LEN);
    hex32(digest, tail + TAIL_HEAD_LEN);
    tail[TAIL_HEAD_LEN + 64] = '"';
    tail[TAIL_HEAD_LEN + 65] = '}';
    tail[TAIL_HEAD_LEN + 66] = '\n';
    memcpy(w->prev, digest, 32);
    w->out.len += blen + TAIL_LEN;
    w->lines++;
    if (last) {
        w->done = 1;
    }
    else {
        sha256_update(&w->stream, (const uint8_t *)tail, TAIL_LEN);
        w->in_leaf++;
    }
}

/* The leaf stream's digest is the leaf hash: into the tree, restart.  Cannot fail. */
static void
finish_leaf(Writer *w)
{
    uint8_t h[32];
    sha256_digest(&w->stream, h);
    merkle_push(&w->tree, h);
    fresh_stream(&w->stream);
    w->in_leaf = 0;
}

static int
call_on_leaf(Writer *w)
{
    if (w->on_leaf == NULL) {
        return 0;
    }
    PyObject *r = PyObject_CallNoArgs(w->on_leaf);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* After a line is committed: complete the leaf if it is full. */
static PyObject *
after_line(Writer *w)
{
    if (w->per_leaf && w->in_leaf == w->per_leaf) {
        finish_leaf(w);
        if (call_on_leaf(w) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static int
close_leaf_impl(Writer *w)
{
    if (w->per_leaf && w->in_leaf) {
        finish_leaf(w);
        return call_on_leaf(w);
    }
    return 0;
}

/* -- lines -------------------------------------------------------------------- */

static int
get_body(PyObject *arg, Py_buffer *view)
{
    if (PyObject_GetBuffer(arg, view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (memchr(view->buf, '\n', (size_t)view->len) != NULL) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "a line body cannot contain a newline");
        return -1;
    }
    return 0;
}

static PyObject *
writer_line(Writer *w, PyObject *arg)
{
    Py_buffer view;
    if (check_open(w) < 0 || get_body(arg, &view) < 0) {
        return NULL;
    }
    size_t blen = (size_t)view.len;
    /* The buffer export keeps a bytearray from resizing while `write` runs. */
    if (prepare(w, blen + TAIL_LEN) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    memcpy(w->out.buf + w->out.len, view.buf, blen);
    commit(w, blen, 0);
    PyBuffer_Release(&view);
    return after_line(w);
}

static PyObject *
writer_summary(Writer *w, PyObject *arg)
{
    Py_buffer view;
    if (check_open(w) < 0 || get_body(arg, &view) < 0) {
        return NULL;
    }
    size_t blen = (size_t)view.len;
    if (close_leaf_impl(w) < 0 || prepare(w, blen + TAIL_LEN) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    memcpy(w->out.buf + w->out.len, view.buf, blen);
    commit(w, blen, 1);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
writer_close_leaf(Writer *w, PyObject *Py_UNUSED(ignored))
{
    if (close_leaf_impl(w) < 0) { /* after the summary there is no partial leaf */
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
writer_flush(Writer *w, PyObject *Py_UNUSED(ignored))
{
    if (buffer_flush(&w->out, w->write) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
writer_root(Writer *w, PyObject *Py_UNUSED(ignored))
{
    uint8_t r[32];
    merkle_root(&w->tree, r);
    return PyBytes_FromStringAndSize((const char *)r, 32);
}

/* -- sites and op lines ----------------------------------------------------------- */

static PyObject *
writer_add_site(Writer *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "add_site() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyLong_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "add_site(): key must be an int (an id())");
        return NULL;
    }
    if (!PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "add_site(): prefix and suffix must be bytes");
        return NULL;
    }
    if (memchr(PyBytes_AS_STRING(args[1]), '\n', (size_t)PyBytes_GET_SIZE(args[1]))
        || memchr(PyBytes_AS_STRING(args[2]), '\n', (size_t)PyBytes_GET_SIZE(args[2]))) {
        PyErr_SetString(PyExc_ValueError, "add_site(): a line cannot contain a newline");
        return NULL;
    }
    unsigned long long k = PyLong_AsUnsignedLongLong(args[0]);
    if ((k == (unsigned long long)-1 && PyErr_Occurred()) || k > (unsigned long long)UINTPTR_MAX) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "add_site(): key must be an id(), an address");
        return NULL;
    }
    if (site_put(&w->sites, (uintptr_t)k, args[1], args[2], args[3]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
writer_clear_sites(Writer *w, PyObject *Py_UNUSED(ignored))
{
    sites_clear(&w->sites);
    Py_RETURN_NONE;
}

/* The op line of `event`'s site with these gas and depth: 1 written, 0 the
 * event has no site (nothing done), -1 error. */
static int
write_op(Writer *w, PyObject *event, long long gas, long long depth)
{
    site_t *s = site_find(&w->sites, (uintptr_t)event);
    if (s == NULL) {
        return 0;
    }
    size_t plen = (size_t)PyBytes_GET_SIZE(s->prefix), slen = (size_t)PyBytes_GET_SIZE(s->suffix);
    opline_layout l;
    opline_measure(&l, plen, gas, depth, slen);
    /* The pieces are held over prepare(): its flush runs Python code, which
     * may drop the site.  From here on nothing runs until the line is sealed. */
    PyObject *pref = Py_NewRef(s->prefix), *suff = Py_NewRef(s->suffix);
    if (prepare(w, l.len + TAIL_LEN) < 0) {
        Py_DECREF(pref);
        Py_DECREF(suff);
        return -1;
    }
    opline_write(w->out.buf + w->out.len, &l, PyBytes_AS_STRING(pref), plen,
                 PyBytes_AS_STRING(suff), slen);
    commit(w, l.len, 0);
    Py_DECREF(pref);
    Py_DECREF(suff);
    return 1;
}

/* op(event, gas, depth): the op line of event's site (added with add_site) with
 * these values; True when written, False when the event has no site or gas
 * and depth are not exact ints that fit 64 bits (nothing written: the caller
 * writes the line itself). */
static PyObject *
writer_op(Writer *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "op() takes 3 arguments (event, gas, depth), %zd given",
                     nargs);
        return NULL;
    }
    if (check_open(w) < 0) {
        return NULL;
    }
    long long v[2];
    for (int i = 0; i < 2; i++) {
        PyObject *x = args[1 + i];
        if (!PyLong_CheckExact(x)) {
            Py_RETURN_FALSE;
        }
        int overflow;
        v[i] = PyLong_AsLongLongAndOverflow(x, &overflow);
        if (overflow) {
            Py_RETURN_FALSE;
        }
    }
    int written = write_op(w, args[0], v[0], v[1]);
    if (written < 0) {
        return NULL;
    }
    if (written == 0) {
        Py_RETURN_FALSE;
    }
    PyObject *r = after_line(w);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_TRUE;
}

/* -- the type ---------------------------------------------------------------------- */

static PyObject *
writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"write", "buffer_size", "lines_per_leaf", "on_leaf", NULL};
    PyObject *write, *on_leaf = Py_None;
    Py_ssize_t buffer_size = 65536, per_leaf = 16;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$nnO:LineWriter", kwlist, &write,
                                     &buffer_size, &per_leaf, &on_leaf)) {
        return NULL;
    }
    if (!PyCallable_Check(write)) {
        PyErr_SetString(PyExc_TypeError, "LineWriter(): write must be callable");
        return NULL;
    }
    if (on_leaf != Py_None && !PyCallable_Check(on_leaf)) {
        PyErr_SetString(PyExc_TypeError, "LineWriter(): on_leaf must be callable or None");
        return NULL;
    }
    if (buffer_size < 1 || per_leaf < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "buffer_size must be positive and lines_per_leaf not negative");
        return NULL;
    }
    Writer *w = (Writer *)type->tp_alloc(type, 0);
    if (w == NULL) {
        return NULL;
    }
    w->write = Py_NewRef(write);
    w->on_leaf = on_leaf == Py_None ? NULL : Py_NewRef(on_leaf);
    w->out.buf = NULL;
    w->out.len = w->out.cap = 0;
    w->out.limit = (size_t)buffer_size;
    w->out.flushing = 0;
    w->done = 0;
    w->per_leaf = (uint64_t)per_leaf;
    w->in_leaf = w->lines = 0;
    memcpy(w->prev, H0, 32);
    fresh_stream(&w->stream);
    merkle_init(&w->tree);
    w->sites.slots = NULL;
    w->sites.mask = w->sites.count = 0;
    return (PyObject *)w;
}

static int
writer_traverse(Writer *w, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(w));
    Py_VISIT(w->write);
    Py_VISIT(w->on_leaf);
    return sites_traverse(&w->sites, visit, arg);
}

static int
writer_clear(Writer *w)
{
    sites_clear(&w->sites);
    Py_CLEAR(w->on_leaf);
    Py_CLEAR(w->write);
    return 0;
}

static void
writer_dealloc(Writer *w)
{
    PyTypeObject *type = Py_TYPE(w);
    PyObject_GC_UnTrack(w);
    writer_clear(w);
    PyMem_Free(w->out.buf);
    w->out.buf = NULL;
    type->tp_free((PyObject *)w);
    Py_DECREF(type); /* instances of a heap type own a reference to it */
}

static PyObject *
writer_get_head(Writer *w, void *Py_UNUSED(closure))
{
    char hex[64];
    hex32(w->prev, hex);
    return PyUnicode_FromStringAndSize(hex, 64);
}

static PyObject *
writer_get_lines(Writer *w, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(w->lines);
}

static PyObject *
writer_get_tree_size(Writer *w, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(w->tree.size);
}

static PyObject *
writer_get_buffered(Writer *w, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(w->out.len);
}

static PyGetSetDef writer_getset[] = {
    {"head", (getter)writer_get_head, NULL, "Hex of the last line's hash (of H_0 before any line).",
     NULL},
    {"lines", (getter)writer_get_lines, NULL, "Lines sealed so far (the summary included).", NULL},
    {"tree_size", (getter)writer_get_tree_size, NULL, "Leaves in the Merkle tree so far.", NULL},
    {"buffered", (getter)writer_get_buffered, NULL, "Bytes not yet handed to write.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef writer_methods[] = {
    {"line", (PyCFunction)writer_line, METH_O,
     "line($self, body, /)\n--\n\nSeal and buffer one line of the tree; body is the line up to its hash "
     "member."},
    {"summary", (PyCFunction)writer_summary, METH_O,
     "summary($self, body, /)\n--\n\nClose a partial leaf, then seal and buffer the summary line (link form, "
     "not in the tree); nothing may follow it."},
    {"close_leaf", (PyCFunction)writer_close_leaf, METH_NOARGS,
     "close_leaf($self, /)\n--\n\nEnd a partial leaf now (no-op if none)."},
    {"flush", (PyCFunction)writer_flush, METH_NOARGS,
     "flush($self, /)\n--\n\nHand every buffered byte to write (not re-entrantly)."},
    {"root", (PyCFunction)writer_root, METH_NOARGS,
     "root($self, /)\n--\n\nThe RFC 9162 root of the leaves so far (SHA-256 of b'' for none)."},
    {"add_site", (PyCFunction)(void (*)(void))writer_add_site, METH_FASTCALL,
     "add_site($self, key, prefix, suffix, keep, /)\n--\n\nThe pieces of an instruction site's op line, "
     "for events whose id() is key; keep (the event) is held so the id stays valid."},
    {"clear_sites", (PyCFunction)writer_clear_sites, METH_NOARGS,
     "clear_sites($self, /)\n--\n\nForget every site."},
    {"op", (PyCFunction)(void (*)(void))writer_op, METH_FASTCALL,
     "op($self, event, gas, depth, /)\n--\n\nThe op line of event's site with this gas and "
     "depth: True when written; False (nothing written) when event has no site, or gas or "
     "depth is not an int that fits 64 bits."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(writer_doc,
"LineWriter(write, *, buffer_size=65536, lines_per_leaf=16, on_leaf=None)\n"
"--\n\n"
"Seal lines per docs/FORMAT.md (version 2), buffer them and hand them to write;\n"
"keep the Merkle tree of the leaves.  op(event, gas, depth) writes the op line of\n"
"a site added with add_site from those plain values.");

static PyType_Slot writer_slots[] = {
    {Py_tp_new, writer_new},
    {Py_tp_dealloc, writer_dealloc},
    {Py_tp_traverse, writer_traverse},
    {Py_tp_clear, writer_clear},
    {Py_tp_methods, writer_methods},
    {Py_tp_getset, writer_getset},
    {Py_tp_doc, (void *)writer_doc},
    {0, NULL},
};

static PyType_Spec writer_spec = {
    .name = "blocktrace.chain._cwriter.LineWriter",
    .basicsize = sizeof(Writer),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = writer_slots,
};

/* -- the module --------------------------------------------------------------------- */

static PyObject *
mod_sha256(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    uint8_t out[32];
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len >= 8192) { /* the export pins the memory while the GIL is released */
        Py_BEGIN_ALLOW_THREADS
        sha256_once(view.buf, (size_t)view.len, out);
        Py_END_ALLOW_THREADS
    }
    else {
        sha256_once(view.buf, (size_t)view.len, out);
    }
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *
mod_sha256_with(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "sha256_with(name: str, data)");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(args[0]);
    sha256_compress_fn compress;
    if (name == NULL) {
        return NULL;
    }
    if (!sha256_compress_named(name, &compress)) {
        PyErr_Format(PyExc_ValueError, "no SHA-256 compression %R in this process", args[0]);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    /* the streaming context with this compression, block by block */
    uint32_t h[8];
    uint8_t blk[128], out[32];
    const uint8_t *p = view.buf;
    size_t len = (size_t)view.len, full = len & ~(size_t)63, rest = len - full;
    memcpy(h, SHA256_H0, sizeof h);
    if (full) {
        compress(h, p, full >> 6);
    }
    memset(blk, 0, sizeof blk);
    memcpy(blk, p + full, rest);
    blk[rest] = 0x80;
    size_t total = rest < 56 ? 64 : 128;
    sha256_store_be64(blk + total - 8, (uint64_t)len << 3);
    compress(h, blk, total >> 6);
    for (int i = 0; i < 8; i++) {
        sha256_store_be32(out + 4 * i, h[i]);
    }
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyMethodDef module_methods[] = {
    {"sha256_with", (PyCFunction)(void (*)(void))mod_sha256_with, METH_FASTCALL,
     "sha256_with(name, data, /)\n--\n\nFor tests: SHA-256 of data with the compression "
     "called name (\"sha-ni\", \"openssl\", \"portable\"); ValueError when this process "
     "cannot use it."},
    {"sha256", mod_sha256, METH_O,
     "sha256(data, /)\n--\n\nSHA-256 of a bytes-like object, with this module's implementation."},
    {"hash_lines", (PyCFunction)(void (*)(void))bench_hash_lines, METH_FASTCALL,
     "hash_lines(body, count, per_leaf, use_hashlib, /)\n--\n\nFor benchmarks: CPU ns to hash "
     "count lines of body as the writer does (per-leaf streams), with this module's SHA-256 or "
     "with hashlib's, called from C."},
    {NULL, NULL, 0, NULL},
};

static int
cwriter_exec(PyObject *m)
{
    module_state *st = PyModule_GetState(m);
    const char *impl = sha256_select_from_env();
    st->writer_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &writer_spec, NULL);
    if (st->writer_type == NULL) {
        return -1;
    }
    if (PyModule_AddStringConstant(m, "IMPLEMENTATION", impl) < 0
        || PyModule_AddObjectRef(m, "LineWriter", (PyObject *)st->writer_type) < 0) {
        return -1;
    }
    return 0;
}

static int
cwriter_traverse(PyObject *m, visitproc visit, void *arg)
{
    module_state *st = PyModule_GetState(m);
    Py_VISIT(st->writer_type);
    return 0;
}

static int
cwriter_clear(PyObject *m)
{
    module_state *st = PyModule_GetState(m);
    Py_CLEAR(st->writer_type);
    return 0;
}

static void
cwriter_free(void *m)
{
    cwriter_clear((PyObject *)m);
}

static PyModuleDef_Slot cwriter_slots[] = {
    {Py_mod_exec, cwriter_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef cwriter_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.chain._cwriter",
    .m_doc = "The version-2 line writer and SHA-256 in C (see blocktrace.chain.writer).",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = cwriter_slots,
    .m_traverse = cwriter_traverse,
    .m_clear = cwriter_clear,
    .m_free = cwriter_free,
};

PyMODINIT_FUNC
PyInit__cwriter(void)
{
    return PyModuleDef_Init(&cwriter_module);
}

/* blocktrace.tracers._cvalues: a line start's values (``--locals``/``--globals``)
 * in C, byte for byte what the Python reference in tracers/chain.py
 * (``_rendered`` + ``_object``) and tracers/render.py (``Renderer``) make.
 *
 * frame_of(code): the innermost live frame running ``code`` (the Python
 *     reference: ``Stepper.frame``), or None.
 * scan(names, prev, renderer, changes, not_kept, encode) -> (fresh, object):
 *     ``_rendered(dict(names), prev, renderer.render)`` and ``_object(fresh,
 *     prev if changes else None)`` in one pass.  The common kinds are rendered
 *     here: None, bools, ints of 64 bits, and the text of str, bytes, lists,
 *     tuples, sets, dicts, ranges, floats inside containers and objects shown
 *     as ``<Type #n>`` (numbered in the renderer's own table).  Anything else
 *     -- a finite float on its own (msgspec's float text), an int past 64 bits,
 *     ``use_repr``, a name that is not a str, text that is not UTF-8, any
 *     error -- is given to the reference: ``encode(renderer.render(value))``
 *     (an object keeps its number while it lives, so rendering again numbers
 *     the same).  An object is numbered here when the renderer's table has it;
 *     a first sight goes to ``renderer.object_number`` (which watches the
 *     object with a weak reference that forgets the number when it dies).
 *
 * Nothing here runs code of the traced program: only exact builtin types are
 * looked into, with their own C-level repr and iteration.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>

#include "opline.h" /* the op line's layout: the format's (format/csrc/opline.h) */
#include "calldepth.h" /* a call line's depth, read: the format's (format/csrc/calldepth.h) */
#include "members.h" /* the members' spellings: the format's (format/csrc/members.h) */
#include "sink.h"   /* the line writer's C entry (events/csrc/sink.h) */
#include "linestart.h" /* the stepper's hook calls LineStart (events/csrc/linestart.h) */

#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
/* 3.13's frame layout, to read a function's locals without its f_locals proxy
 * (snap_frame below; built against the headers of the Python it runs in) */
#define Py_BUILD_CORE 1
#include "internal/pycore_code.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* (its ma_version_tag) */
#include "internal/pycore_dict.h"
#pragma GCC diagnostic pop
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#define DICT_ENTRIES 1 /* a dict's entries read in place (dict_hinted) */
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000 && !defined(Py_GIL_DISABLED)
/* 3.12's frame layout, to bring a function's f_locals dict up to date without
 * PyFrame_GetLocals (snap_frame below) */
#define Py_BUILD_CORE 1
#include "internal/pycore_code.h"
#undef _PyGC_FINALIZED /* (3.12's pycore_gc.h defines a function of that name) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* (its ma_version_tag) */
#include "internal/pycore_dict.h"
#pragma GCC diagnostic pop
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#define DICT_ENTRIES 1
#endif
#include <stdint.h>
#include <string.h>

/* -- a growable byte buffer, on the stack while small ---------------------- */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
    char small[512];
} buf;

static void
buf_init(buf *b)
{
    b->p = b->small;
    b->len = 0;
    b->cap = (Py_ssize_t)sizeof b->small;
}

static void
buf_free(buf *b)
{
    if (b->p != b->small) {
        PyMem_Free(b->p);
    }
    buf_init(b);
}

static int
buf_room(buf *b, Py_ssize_t n)
{
    if (b->len + n <= b->cap) {
        return 0;
    }
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + n) {
        cap *= 2;
    }
    char *p = b->p == b->small ? PyMem_Malloc((size_t)cap) : PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->p == b->small) {
        memcpy(p, b->small, (size_t)b->len);
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int
buf_add(buf *b, const char *s, Py_ssize_t n)
{
    if (buf_room(b, n) < 0) {
        return -1;
    }
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

#define BUF_LIT(b, s) buf_add((b), (s), (Py_ssize_t)(sizeof(s) - 1))

/* The UTF-8 of a str; -1 with an error set (a lone surrogate) */
static int
buf_str(buf *b, PyObject *s)
{
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) {
        return -1;
    }
    return buf_add(b, u, n);
}

/* repr(v) of an exact builtin (its own C repr: no program code) */
static int
buf_repr(buf *b, PyObject *v)
{
    PyObject *r = PyObject_Repr(v);
    if (r == NULL) {
        return -1;
    }
    int rc = PyUnicode_CheckExact(r) ? buf_str(b, r) : -1;
    if (rc < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_TypeError, "repr is not a str");
    }
    Py_DECREF(r);
    return rc;
}

/* JSON string of UTF-8 text, escaped as msgspec escapes: '"', '\\', and
 * control characters below 0x20 (\b \t \n \f \r, else \u00xx) */
static int
buf_json_string(buf *out, const char *s, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_room(out, n + 2) < 0) {
        return -1;
    }
    Py_ssize_t plain = 0; /* most text needs no escape: one copy */
    while (plain < n && (unsigned char)s[plain] >= 0x20 && s[plain] != '"' && s[plain] != '\\') {
        plain++;
    }
    if (plain == n) {
        char *o = out->p + out->len;
        o[0] = '"';
        memcpy(o + 1, s, (size_t)n);
        o[n + 1] = '"';
        out->len += n + 2;
        return 0;
    }
    out->p[out->len++] = '"';
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        if (buf_add(out, s + start, i - start) < 0) {
            return -1;
        }
        start = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        Py_ssize_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\t': esc[1] = 't'; break;
        case '\n': esc[1] = 'n'; break;
        case '\f': esc[1] = 'f'; break;
        case '\r': esc[1] = 'r'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        if (buf_add(out, esc, len) < 0) {
            return -1;
        }
    }
    if (buf_add(out, s + start, n - start) < 0) {
        return -1;
    }
    return BUF_LIT(out, "\"");
}

/* -- the renderer's text (render.py ``Renderer._text``) -------------------- */

#define UNSUPPORTED (-2) /* not rendered here: the reference renders the value */

typedef struct {
    PyObject *renderer;
    PyObject *numbers; /* renderer._numbers: id -> number */
    Py_ssize_t max_str, max_items, max_depth;
    int use_repr;
    PyObject *limits;  /* renderer._limits */
    PyObject *deaths;  /* renderer._deaths[0] once read (numbered objects that died), or NULL */
    buf text;
    /* the last object object_number looked up (its address only), its id as an
     * int and its number (or NULL: none), for the marker made right after */
    PyObject *last_obj, *last_key, *last_number;
} render_ctx;

static PyObject *s_render, *s_numbers, *s_limits, *s_object_number, *s_deaths;

static int
get_size(PyObject *limits, Py_ssize_t i, Py_ssize_t *out)
{
    PyObject *v = PyTuple_GET_ITEM(limits, i);
    *out = PyLong_Check(v) ? PyLong_AsSsize_t(v) : -1;
    if (*out == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (*out < 0) {
        PyErr_SetString(PyExc_ValueError, "renderer bounds must be ints >= 0");
        return -1;
    }
    return 0;
}

/* obj's instance dict (a new reference) when its type looks attributes up
 * generically, else NULL (no error, or an error set) */
static PyObject *
plain_dict(PyObject *obj)
{
    PyTypeObject *t = Py_TYPE(obj);
    if (t->tp_getattro == PyObject_GenericGetAttr &&
        ((t->tp_flags & Py_TPFLAGS_MANAGED_DICT) || t->tp_dictoffset > 0)) {
        PyObject *dict = PyObject_GenericGetDict(obj, NULL);
        if (dict != NULL && !PyDict_CheckExact(dict)) {
            Py_CLEAR(dict);
        }
        return dict;
    }
    return NULL;
}

/* obj.<name>, a new reference: from dict (obj's plain_dict, or NULL) when it
 * holds the name (a plain instance attribute: what getattr would find, unless
 * a data descriptor of the same name shadows it, and then the dict does not
 * hold it), else through getattr. */
static PyObject *
attr_in(PyObject *obj, PyObject *dict, PyObject *name)
{
    if (dict != NULL) {
        PyObject *v = PyDict_GetItemWithError(dict, name);
        if (v != NULL || PyErr_Occurred()) {
            return Py_XNewRef(v);
        }
    }
    return PyObject_GetAttr(obj, name);
}

/* d[name] (borrowed; NULL without an error when absent, or with one): read
 * from the entry at *hint when that entry still holds name (by identity: an
 * interned str) and a value, else looked up, and *hint learnt.  A line start
 * reads the stepper's ``renderer`` and ``thread`` so: its instance dict changes
 * at every instruction (``site``), but not its keys, so the entry stays where
 * it was (a dict's entries below dk_nentries are never moved; a resize makes
 * new keys, checked again).  With the GIL (never built free-threaded). */
static PyObject *
dict_hinted(PyObject *d, PyObject *name, Py_ssize_t *hint)
{
#ifdef DICT_ENTRIES
    PyDictObject *mp = (PyDictObject *)d;
    PyDictKeysObject *k = mp->ma_keys;
    Py_ssize_t ix = *hint;
    if (DK_IS_UNICODE(k) && ix >= 0 && ix < k->dk_nentries) {
        PyDictUnicodeEntry *e = DK_UNICODE_ENTRIES(k) + ix;
        if (e->me_key == name) {
            PyObject *v = mp->ma_values != NULL ? mp->ma_values->values[ix] : e->me_value;
            if (v != NULL) {
                return v;
            }
        }
    }
#endif
    PyObject *v = PyDict_GetItemWithError(d, name);
#ifdef DICT_ENTRIES
    *hint = -1;
    if (v != NULL && DK_IS_UNICODE(mp->ma_keys)) {
        k = mp->ma_keys;
        PyDictUnicodeEntry *e = DK_UNICODE_ENTRIES(k);
        for (ix = 0; ix < k->dk_nentries; ix++) {
            if (e[ix].me_key == name) {
                *hint = ix;
                break;
            }
        }
    }
#endif
    return v;
}

/* PyDict_Next(d, pos, key, value), the entries of a dict with str keys and
 * its values in its entries (a dict made by PyDict_New and given str keys:
 * the states, a frame's f_locals, a module's dict) read in place, without a
 * call; any other dict through PyDict_Next.  With the GIL. */
static inline int
dict_next(PyObject *d, Py_ssize_t *pos, PyObject **key, PyObject **value)
{
#ifdef DICT_ENTRIES
    PyDictObject *mp = (PyDictObject *)d;
    PyDictKeysObject *k = mp->ma_keys;
    if (mp->ma_values == NULL && DK_IS_UNICODE(k)) {
        Py_ssize_t i = *pos, n = k->dk_nentries;
        if (i < 0) {
            return 0;
        }
        PyDictUnicodeEntry *e = DK_UNICODE_ENTRIES(k);
        while (i < n && e[i].me_value == NULL) {
            i++;
        }
        if (i >= n) {
            return 0;
        }
        *key = e[i].me_key;
        *value = e[i].me_value;
        *pos = i + 1;
        return 1;
    }
#endif
    return PyDict_Next(d, pos, key, value);
}

/* attr_in with the name's entry hinted (dict_hinted) */
static PyObject *
attr_hinted(PyObject *obj, PyObject *dict, PyObject *name, Py_ssize_t *hint)
{
    if (dict != NULL) {
        PyObject *v = dict_hinted(dict, name, hint);
        if (v != NULL || PyErr_Occurred()) {
            return Py_XNewRef(v);
        }
    }
    return PyObject_GetAttr(obj, name);
}

/* where the stepper's renderer and thread were in its instance dict */
static Py_ssize_t hint_renderer = -1, hint_thread = -1;

static PyObject *s_shared;

/* The last bounds tuple parsed and what it says (a strong reference: the
 * same tuple object says the same) */
static PyObject *parsed_limits;
static Py_ssize_t parsed_str, parsed_items, parsed_depth;
static int parsed_repr;

static int
parse_limits(render_ctx *ctx, PyObject *limits)
{
    if (limits == parsed_limits) {
        ctx->max_str = parsed_str;
        ctx->max_items = parsed_items;
        ctx->max_depth = parsed_depth;
        ctx->use_repr = parsed_repr;
        return 0;
    }
    if (!PyTuple_CheckExact(limits) || PyTuple_GET_SIZE(limits) != 4) {
        PyErr_SetString(PyExc_TypeError, "renderer._limits is not a 4-tuple");
        return -1;
    }
    if (get_size(limits, 0, &ctx->max_str) < 0 || get_size(limits, 1, &ctx->max_items) < 0 ||
        get_size(limits, 2, &ctx->max_depth) < 0 ||
        (ctx->use_repr = PyObject_IsTrue(PyTuple_GET_ITEM(limits, 3))) < 0) {
        return -1;
    }
    Py_XSETREF(parsed_limits, Py_NewRef(limits));
    parsed_str = ctx->max_str;
    parsed_items = ctx->max_items;
    parsed_depth = ctx->max_depth;
    parsed_repr = ctx->use_repr;
    return 0;
}

/* The renderer's type whose ``_shared`` is a slot (Renderer's __slots__) and
 * that slot's offset, found on the first renderer of that type (the type held:
 * its address stays its own) */
static PyTypeObject *slot_type;
static Py_ssize_t slot_offset; /* 0: _shared is no object slot of slot_type */

/* renderer._shared read at its slot's offset (a new reference), or NULL with
 * no error when that cannot be done (then it is looked up) */
static PyObject *
shared_slot(PyObject *renderer)
{
    PyTypeObject *t = Py_TYPE(renderer);
    if (t != slot_type) {
        PyObject *descr = _PyType_Lookup(t, s_shared); /* borrowed, no error */
        Py_ssize_t offset = 0;
        if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
            if (m->type == Py_T_OBJECT_EX && !(m->flags & Py_READONLY)) {
                offset = m->offset;
            }
        }
        Py_XSETREF(slot_type, (PyTypeObject *)Py_NewRef(t));
        slot_offset = offset;
    }
    if (slot_offset <= 0) {
        return NULL;
    }
    return Py_XNewRef(*(PyObject **)((char *)renderer + slot_offset));
}

/* The renderer's bounds (``_limits``: max_str, max_items, max_depth,
 * use_repr), number table and death count: from its ``_shared`` (the three
 * in one tuple), else from the three attributes */
static int
ctx_init(render_ctx *ctx, PyObject *renderer)
{
    ctx->renderer = renderer;
    PyObject *dict = NULL, *shared = shared_slot(renderer), *limits = NULL, *deaths = NULL;
    if (shared == NULL) {
        dict = plain_dict(renderer);
        if (dict == NULL && PyErr_Occurred()) {
            return -1;
        }
        shared = attr_in(renderer, dict, s_shared);
    }
    if (shared != NULL && PyTuple_CheckExact(shared) && PyTuple_GET_SIZE(shared) == 3) {
        limits = Py_NewRef(PyTuple_GET_ITEM(shared, 0));
        ctx->numbers = Py_NewRef(PyTuple_GET_ITEM(shared, 1));
        deaths = Py_NewRef(PyTuple_GET_ITEM(shared, 2));
    }
    else {
        PyErr_Clear();
        limits = attr_in(renderer, dict, s_limits);
        ctx->numbers = limits == NULL ? NULL : attr_in(renderer, dict, s_numbers);
        deaths = ctx->numbers == NULL ? NULL : attr_in(renderer, dict, s_deaths);
    }
    Py_XDECREF(shared);
    Py_XDECREF(dict);
    ctx->limits = limits;
    if (limits == NULL || ctx->numbers == NULL || deaths == NULL) {
        Py_XDECREF(deaths);
        return -1;
    }
    /* (the death count, as ctx_deaths reads it) */
    if (PyList_CheckExact(deaths) && PyList_GET_SIZE(deaths) == 1) {
        ctx->deaths = Py_NewRef(PyList_GET_ITEM(deaths, 0));
    }
    Py_DECREF(deaths);
    if (parse_limits(ctx, limits) < 0) {
        return -1;
    }
    if (!PyDict_CheckExact(ctx->numbers)) {
        PyErr_SetString(PyExc_TypeError, "renderer._numbers is not a dict");
        return -1;
    }
    return 0;
}

static void
ctx_free(render_ctx *ctx)
{
    Py_XDECREF(ctx->numbers);
    Py_XDECREF(ctx->limits);
    Py_XDECREF(ctx->deaths);
    Py_CLEAR(ctx->last_key);
    Py_CLEAR(ctx->last_number);
    buf_free(&ctx->text);
}

/* Renderer.object_number(v): the number (> 0), 0 for an object without one
 * (its type cannot be weakly referenced), -1 on error.  The table is read
 * here; a first sight is the renderer's (it numbers and watches the object). */
static long long
object_number(render_ctx *ctx, PyObject *v)
{
    PyObject *key = PyLong_FromVoidPtr(v);
    if (key == NULL) {
        return -1;
    }
    PyObject *n = PyDict_GetItemWithError(ctx->numbers, key); /* borrowed */
    ctx->last_obj = NULL;
    Py_XSETREF(ctx->last_key, key);
    Py_CLEAR(ctx->last_number);
    if (n != NULL) {
        ctx->last_obj = v;
        ctx->last_number = Py_NewRef(n);
        return PyLong_AsLongLong(n);
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    if (Py_TYPE(v)->tp_weaklistoffset == 0) {
        return 0; /* as the renderer answers without asking: type(v).__weakrefoffset__ */
    }
    n = PyObject_CallMethodOneArg(ctx->renderer, s_object_number, v);
    if (n == NULL) {
        return -1;
    }
    int none = n == Py_None;
    long long out = none ? 0 : PyLong_AsLongLong(n);
    Py_DECREF(n);
    if (out <= 0 && !none && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "object_number: not a positive number");
    }
    return out <= 0 && !none ? -1 : out;
}

static int text(render_ctx *ctx, PyObject *v, Py_ssize_t depth);

/* the decimal digits of n */
static int
buf_int(buf *b, long long n)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char digits[24];
    int i = (int)sizeof digits;
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    while (u >= 100) { /* two digits at a time */
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        digits[--i] = pairs[2 * r + 1];
        digits[--i] = pairs[2 * r];
    }
    if (u >= 10) {
        digits[--i] = pairs[2 * u + 1];
        digits[--i] = pairs[2 * u];
    }
    else {
        digits[--i] = (char)('0' + u);
    }
    if (n < 0) {
        digits[--i] = '-';
    }
    return buf_add(b, digits + i, (Py_ssize_t)sizeof digits - i);
}

static int
add_count(buf *b, const char *before, long long n, const char *after)
{
    if (buf_add(b, before, (Py_ssize_t)strlen(before)) < 0 || buf_int(b, n) < 0) {
        return -1;
    }
    return buf_add(b, after, (Py_ssize_t)strlen(after));
}

/* Renderer._seq */
static int
text_seq(render_ctx *ctx, PyObject *v, PyTypeObject *t, Py_ssize_t depth)
{
    buf *b = &ctx->text;
    const char *opener, *closer;
    Py_ssize_t size = PyObject_Size(v);
    if (size < 0) {
        return -1;
    }
    if (t == &PyList_Type) {
        opener = "[";
        closer = "]";
    }
    else if (t == &PyTuple_Type) {
        opener = "(";
        closer = size == 1 ? ",)" : ")";
    }
    else if (size == 0) {
        return t == &PySet_Type ? BUF_LIT(b, "set()") : BUF_LIT(b, "frozenset()");
    }
    else if (t == &PySet_Type) {
        opener = "{";
        closer = "}";
    }
    else {
        opener = "frozenset({";
        closer = "})";
    }
    if (buf_add(b, opener, (Py_ssize_t)strlen(opener)) < 0) {
        return -1;
    }
    if (depth <= 0) {
        if (BUF_LIT(b, "\xe2\x80\xa6") < 0) { /* … */
            return -1;
        }
    }
    else {
        PyObject *it = PyObject_GetIter(v);
        if (it == NULL) {
            return -1;
        }
        PyObject *item;
        Py_ssize_t i = 0;
        int rc = 0;
        while ((item = PyIter_Next(it)) != NULL) {
            if (i && BUF_LIT(b, ", ") < 0) {
                rc = -1;
            }
            else if (i >= ctx->max_items) {
                rc = add_count(b, "\xe2\x80\xa6", size - i, " more");
                Py_DECREF(item);
                break;
            }
            else {
                rc = text(ctx, item, depth - 1);
            }
            Py_DECREF(item);
            if (rc != 0) {
                break;
            }
            i++;
        }
        Py_DECREF(it);
        if (rc != 0) {
            return rc;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    return buf_add(b, closer, (Py_ssize_t)strlen(closer));
}

/* Renderer._dict */
static int
text_dict(render_ctx *ctx, PyObject *v, Py_ssize_t depth)
{
    buf *b = &ctx->text;
    if (depth <= 0) {
        return BUF_LIT(b, "{\xe2\x80\xa6}");
    }
    if (BUF_LIT(b, "{") < 0) {
        return -1;
    }
    Py_ssize_t size = PyDict_GET_SIZE(v), pos = 0, i = 0;
    PyObject *key, *item;
    while (PyDict_Next(v, &pos, &key, &item)) {
        if (i && BUF_LIT(b, ", ") < 0) {
            return -1;
        }
        if (i >= ctx->max_items) {
            if (add_count(b, "\xe2\x80\xa6", size - i, " more") < 0) {
                return -1;
            }
            break;
        }
        Py_INCREF(key);
        Py_INCREF(item);
        int rc = text(ctx, key, depth - 1);
        if (rc == 0) {
            rc = BUF_LIT(b, ": ");
        }
        if (rc == 0) {
            rc = text(ctx, item, depth - 1);
        }
        Py_DECREF(key);
        Py_DECREF(item);
        if (rc != 0) {
            return rc;
        }
        if (PyDict_GET_SIZE(v) != size) {
            return UNSUPPORTED; /* changed under us: the reference says what */
        }
        i++;
    }
    return BUF_LIT(b, "}");
}

/* str, bytes, bytearray: repr of the first max_str, then … if longer */
static int
text_string(render_ctx *ctx, PyObject *v, PyTypeObject *t)
{
    Py_ssize_t size = PyObject_Size(v);
    if (size < 0) {
        return -1;
    }
    if (t == &PyUnicode_Type && size <= ctx->max_str && PyUnicode_IS_ASCII(v)) {
        /* repr(v) of printable ASCII without a backslash, as unicode_repr makes
         * it: the text between quotes, '...' or, when it holds a ' and no ",
         * "..." (with both, or anything repr escapes, repr's own below) */
        const unsigned char *p = PyUnicode_1BYTE_DATA(v);
        int single = 0, dbl = 0;
        Py_ssize_t i = 0;
        for (; i < size; i++) {
            unsigned char ch = p[i];
            if (ch < 0x20 || ch == 0x7f || ch == '\\') {
                break;
            }
            single |= ch == '\'';
            dbl |= ch == '"';
        }
        if (i == size && !(single && dbl)) {
            buf *b = &ctx->text;
            if (buf_room(b, size + 2) < 0) {
                return -1;
            }
            char quote = single ? '"' : '\'';
            b->p[b->len] = quote;
            memcpy(b->p + b->len + 1, p, (size_t)size);
            b->p[b->len + 1 + size] = quote;
            b->len += size + 2;
            return 0;
        }
    }
    PyObject *head;
    if (size <= ctx->max_str) {
        head = Py_NewRef(v);
    }
    else if (t == &PyUnicode_Type) {
        head = PyUnicode_Substring(v, 0, ctx->max_str);
    }
    else {
        head = PySequence_GetSlice(v, 0, ctx->max_str);
    }
    if (head == NULL) {
        return -1;
    }
    int rc = buf_repr(&ctx->text, head);
    Py_DECREF(head);
    if (rc == 0 && size > ctx->max_str) {
        rc = BUF_LIT(&ctx->text, "\xe2\x80\xa6");
    }
    return rc;
}

/* Renderer._text: 0, -1 (an error set), or UNSUPPORTED */
static int
text(render_ctx *ctx, PyObject *v, Py_ssize_t depth)
{
    PyTypeObject *t = Py_TYPE(v);
    if (v == Py_None || t == &PyBool_Type || t == &PyFloat_Type || t == &PyComplex_Type ||
        t == &PyRange_Type) {
        return buf_repr(&ctx->text, v);
    }
    if (t == &PyLong_Type) {
        int overflow;
        (void)PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) {
            return UNSUPPORTED; /* past 64 bits: bit_length() is the reference's */
        }
        return buf_repr(&ctx->text, v);
    }
    if (t == &PyUnicode_Type || t == &PyBytes_Type || t == &PyByteArray_Type) {
        return text_string(ctx, v, t);
    }
    if (t == &PyList_Type || t == &PyTuple_Type || t == &PySet_Type || t == &PyFrozenSet_Type) {
        return text_seq(ctx, v, t, depth);
    }
    if (t == &PyDict_Type) {
        return text_dict(ctx, v, depth);
    }
    if (ctx->use_repr) {
        return UNSUPPORTED;
    }
    long long n = object_number(ctx, v);
    if (n < 0) {
        return -1;
    }
    PyObject *name = PyType_GetQualName(t);
    if (name == NULL) {
        return -1;
    }
    int rc = BUF_LIT(&ctx->text, "<");
    if (rc == 0) {
        rc = PyUnicode_CheckExact(name) ? buf_str(&ctx->text, name) : BUF_LIT(&ctx->text, "object");
    }
    Py_DECREF(name);
    if (rc == 0) {
        rc = n == 0 ? BUF_LIT(&ctx->text, ">") : add_count(&ctx->text, " #", n, ">");
    }
    return rc;
}

/* Renderer.render(v) as JSON into out: 0, -1 (an error set) or UNSUPPORTED */
static int
render_json(render_ctx *ctx, PyObject *v, buf *out)
{
    PyTypeObject *t = Py_TYPE(v);
    if (v == Py_None) {
        return BUF_LIT(out, "null");
    }
    if (t == &PyBool_Type) {
        return v == Py_True ? BUF_LIT(out, "true") : BUF_LIT(out, "false");
    }
    if (t == &PyLong_Type) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || n == LLONG_MIN) {
            return UNSUPPORTED;
        }
        return buf_int(out, n);
    }
    if (t == &PyFloat_Type && isfinite(PyFloat_AS_DOUBLE(v))) {
        return UNSUPPORTED; /* msgspec's float text */
    }
    buf *b = &ctx->text;
    b->len = 0;
    int rc = text(ctx, v, ctx->max_depth);
    if (rc != 0) {
        return rc;
    }
    /* Renderer.text: at most max_str * 4 characters, then … */
    Py_ssize_t limit = ctx->max_str * 4, chars = 0, cut = -1;
    for (Py_ssize_t i = 0; i < b->len; i++) {
        if (((unsigned char)b->p[i] & 0xC0) != 0x80) {
            if (chars == limit) {
                cut = i;
                break;
            }
            chars++;
        }
    }
    if (cut >= 0) {
        b->len = cut;
        if (BUF_LIT(b, "\xe2\x80\xa6") < 0) {
            return -1;
        }
    }
    return buf_json_string(out, b->p, b->len);
}

/* -- scan --------------------------------------------------------------------- */

static int
kept_type(PyTypeObject *t)
{
    return t == &PyLong_Type || t == &PyFloat_Type || t == &PyComplex_Type ||
           t == &PyBool_Type || t == &PyUnicode_Type || t == &PyBytes_Type ||
           t == Py_TYPE(Py_None);
}

static int
dunder(PyObject *name)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    return n >= 2 && PyUnicode_READ_CHAR(name, 0) == '_' && PyUnicode_READ_CHAR(name, 1) == '_' &&
           PyUnicode_READ_CHAR(name, n - 1) == '_' && PyUnicode_READ_CHAR(name, n - 2) == '_';
}

/* -- a name's ``"name":`` prefix, remembered ---------------------------------
 *
 * Every member shown starts with its name as a JSON string and a colon; the
 * names are mostly a code's own (interned str, the same object at each line
 * start).  So the prefix of the last names seen is remembered by the name's
 * address (direct-mapped), with the name held: a str never changes, so while
 * it is held the same address is the same text. */

#define PREFIXES 128
static PyObject *prefix_name[PREFIXES], *prefix_json[PREFIXES];

/* ``"name":`` of a str name into out: 0, -1 (an error set) or UNSUPPORTED
 * (not UTF-8: the reference says what becomes of it) */
static int
name_prefix(buf *out, PyObject *name)
{
    size_t i = ((uintptr_t)name >> 4) % PREFIXES;
    if (prefix_name[i] == name) {
        return buf_add(out, PyBytes_AS_STRING(prefix_json[i]), PyBytes_GET_SIZE(prefix_json[i]));
    }
    Py_ssize_t n, mark = out->len;
    const char *u = PyUnicode_AsUTF8AndSize(name, &n);
    if (u == NULL) {
        PyErr_Clear();
        return UNSUPPORTED;
    }
    if (buf_json_string(out, u, n) < 0 || BUF_LIT(out, ":") < 0) {
        return -1;
    }
    PyObject *json = PyBytes_FromStringAndSize(out->p + mark, out->len - mark);
    if (json == NULL) {
        PyErr_Clear(); /* (only not remembered) */
        return 0;
    }
    Py_XSETREF(prefix_json[i], json);
    Py_XSETREF(prefix_name[i], Py_NewRef(name));
    return 0;
}

/* "name":value of one name into out; 0, -1 (error: raised as the reference
 * raises), or UNSUPPORTED for a name the reference should take */
static int
member(render_ctx *ctx, PyObject *name, PyObject *value, PyObject *encode, buf *out,
       int *by_reference, Py_ssize_t *value_at)
{
    *by_reference = 0;
    int named = name_prefix(out, name);
    if (named != 0) {
        return named;
    }
    Py_ssize_t mark = out->len;
    *value_at = mark;
    int rc = render_json(ctx, value, out);
    if (rc == 0) {
        return 0;
    }
    if (rc == -1) {
        PyErr_Clear(); /* the reference renders it, and says what went wrong */
    }
    out->len = mark;
    *by_reference = 1;
    PyObject *rendered = PyObject_CallMethodOneArg(ctx->renderer, s_render, value);
    if (rendered == NULL) {
        return -1;
    }
    PyObject *json = PyObject_CallOneArg(encode, rendered);
    Py_DECREF(rendered);
    if (json == NULL) {
        return -1;
    }
    rc = PyBytes_Check(json) ? buf_add(out, PyBytes_AS_STRING(json), PyBytes_GET_SIZE(json)) : -1;
    if (rc < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_TypeError, "encode did not return bytes");
    }
    Py_DECREF(json);
    return rc;
}

/* Shown as ``<Type #n>`` or ``<Type>`` (no builtin looked into, no repr): its
 * text depends only on its type's qualname, the bounds and its number, which is
 * its own while it lives (the renderer forgets it when it dies). */
static int
opaque(render_ctx *ctx, PyObject *v)
{
    PyTypeObject *t = Py_TYPE(v);
    if (PyType_HasFeature(t, Py_TPFLAGS_HEAPTYPE)) {
        return !ctx->use_repr; /* (the types looked into below are all static) */
    }
    return !ctx->use_repr && v != Py_None && t != &PyBool_Type && t != &PyFloat_Type &&
           t != &PyComplex_Type && t != &PyRange_Type && t != &PyLong_Type &&
           t != &PyUnicode_Type && t != &PyBytes_Type && t != &PyByteArray_Type &&
           t != &PyList_Type && t != &PyTuple_Type && t != &PySet_Type &&
           t != &PyFrozenSet_Type && t != &PyDict_Type;
}

/* The number table's entry for v (borrowed), NULL (an error set, or none) */
static PyObject *
number_of(render_ctx *ctx, PyObject *v)
{
    PyObject *key = PyLong_FromVoidPtr(v);
    if (key == NULL) {
        return NULL;
    }
    PyObject *n = PyDict_GetItemWithError(ctx->numbers, key);
    Py_DECREF(key);
    return n;
}

static PyObject *ctx_deaths(render_ctx *ctx);

/* What an opaque value's rendering depends on, kept in place of the value
 * (never the object itself: keeping it alive would change the program):
 * (id, id of its type, the type's qualname, its number or None, the bounds,
 * the renderer's deaths then) */
static PyObject *
opaque_marker(render_ctx *ctx, PyObject *v)
{
    PyObject *deaths = ctx_deaths(ctx);
    if (deaths == NULL) {
        return NULL;
    }
    int known = v == ctx->last_obj; /* just rendered: its id and number in hand */
    PyObject *number = known ? ctx->last_number : number_of(ctx, v);
    if (number == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        number = Py_None; /* shown without a number */
    }
    PyObject *qualname = PyType_GetQualName(Py_TYPE(v));
    if (qualname == NULL) {
        return NULL;
    }
    PyObject *id = known ? Py_NewRef(ctx->last_key) : PyLong_FromVoidPtr(v);
    PyObject *type_id = PyLong_FromVoidPtr(Py_TYPE(v)), *marker = NULL;
    if (id != NULL && type_id != NULL) {
        marker = PyTuple_Pack(6, id, type_id, qualname, number, ctx->limits, deaths);
    }
    Py_XDECREF(id);
    Py_XDECREF(type_id);
    Py_DECREF(qualname);
    return marker;
}

/* 1 when marker (from opaque_marker) says v renders as it did then: the same
 * type (name) and bounds, and either no number (a type that cannot be weakly
 * referenced) or the same object still holding the same number (an object that
 * died was forgotten: one at its address is numbered anew; while no numbered
 * object died, the one at the marker's address is the one it numbered); -1 error */
static int
opaque_same(render_ctx *ctx, PyObject *marker, PyObject *v)
{
    if (!PyTuple_CheckExact(marker) || PyTuple_GET_SIZE(marker) != 6 || !opaque(ctx, v) ||
        PyTuple_GET_ITEM(marker, 4) != ctx->limits ||
        PyLong_AsVoidPtr(PyTuple_GET_ITEM(marker, 1)) != (void *)Py_TYPE(v)) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *was = PyTuple_GET_ITEM(marker, 3);
    if (was != Py_None) {
        if (PyLong_AsVoidPtr(PyTuple_GET_ITEM(marker, 0)) != (void *)v) {
            return PyErr_Occurred() ? -1 : 0;
        }
        PyObject *deaths = ctx_deaths(ctx), *then = PyTuple_GET_ITEM(marker, 5);
        if (deaths == NULL) {
            return -1;
        }
        int alive = then == deaths ? 1 : PyObject_RichCompareBool(then, deaths, Py_EQ);
        if (alive < 0) {
            return -1;
        }
        if (!alive) { /* some numbered object died: is this one's number still its own? */
            PyObject *now = PyDict_GetItemWithError(ctx->numbers, PyTuple_GET_ITEM(marker, 0));
            if (now == NULL) {
                return PyErr_Occurred() ? -1 : 0;
            }
            if (now != was) {
                int same = PyObject_RichCompareBool(now, was, Py_EQ);
                if (same != 1) {
                    return same;
                }
            }
        }
    }
    if (!PyType_HasFeature(Py_TYPE(v), Py_TPFLAGS_HEAPTYPE)) {
        return 1; /* a static type's name never changes */
    }
    PyObject *qualname = PyType_GetQualName(Py_TYPE(v));
    if (qualname == NULL) {
        return -1;
    }
    int same = qualname == PyTuple_GET_ITEM(marker, 2) ||
               (PyUnicode_CheckExact(qualname) && PyUnicode_Compare(qualname, PyTuple_GET_ITEM(marker, 2)) == 0);
    Py_DECREF(qualname);
    return PyErr_Occurred() ? -1 : same;
}

/* -- objects shown by number, their text remembered --------------------------
 *
 * A new frame's first line start shows every local (both modes), and its
 * arguments are mostly objects seen before (``self``): rendering one looks its
 * number up in the renderer's table, formats ``<Type #n>`` and makes its
 * marker.  So the marker and the JSON text of the last objects rendered are
 * remembered by address (direct-mapped); a value at that address whose marker
 * says it renders as then (opaque_same: the same type, type name, bounds and,
 * if a numbered object died since, the same number for that address) gets
 * that text and shares that marker.  Only markers and bytes are kept, never
 * the objects (a marker holds the object's id, its type's id and name, its
 * number, the bounds and the death count). */

#define MEMO 64
static PyObject *memo_marker[MEMO], *memo_json[MEMO];

static inline size_t
memo_slot(PyObject *v)
{
    return ((uintptr_t)v >> 4) % MEMO;
}

/* The remembered JSON text of v (borrowed) when its marker says v renders as
 * then, with that marker in *marker (borrowed), else NULL (no error: the pass
 * renders it, and says what goes wrong) */
static PyObject *
memo_find(render_ctx *ctx, PyObject *v, PyObject **marker)
{
    size_t i = memo_slot(v);
    PyObject *m = memo_marker[i];
    if (m == NULL || PyLong_AsVoidPtr(PyTuple_GET_ITEM(m, 0)) != (void *)v) {
        return NULL;
    }
    int same = opaque_same(ctx, m, v);
    if (same <= 0) {
        if (same < 0) {
            PyErr_Clear();
        }
        return NULL;
    }
    *marker = m;
    return memo_json[i];
}

/* v rendered as json (n bytes) with its marker: remembered */
static void
memo_keep(PyObject *v, PyObject *marker, const char *json, Py_ssize_t n)
{
    size_t i = memo_slot(v);
    PyObject *b = PyBytes_FromStringAndSize(json, n);
    if (b == NULL) {
        PyErr_Clear(); /* (not remembered) */
        return;
    }
    Py_XSETREF(memo_marker[i], Py_NewRef(marker));
    Py_XSETREF(memo_json[i], b);
}

/* -- lists and tuples of scalars and objects shown by number ------------------
 *
 * A list's or tuple's text depends only on its type, its length, its first
 * max_items items and the bounds.  When each of those items is an immutable
 * builtin scalar (kept by the marker: its identity then says its value) or an
 * object shown by number or as <Type> (its identity, type and type name say its
 * text, as long as no numbered object died since: one that did may have left
 * its address to another), the marker below says so without keeping any such
 * object alive: (bounds, deaths, blob of the identities, the scalars kept). */

#define SEQ_HEAD 2 /* blob: type, length, then (item, its type, its qualname) per item */

static PyObject *
ctx_deaths(render_ctx *ctx)
{
    if (ctx->deaths == NULL) {
        PyObject *deaths = PyObject_GetAttr(ctx->renderer, s_deaths);
        if (deaths == NULL) {
            return NULL;
        }
        if (!PyList_CheckExact(deaths) || PyList_GET_SIZE(deaths) != 1) {
            Py_DECREF(deaths);
            PyErr_SetString(PyExc_TypeError, "renderer._deaths is not a one-item list");
            return NULL;
        }
        ctx->deaths = Py_NewRef(PyList_GET_ITEM(deaths, 0));
        Py_DECREF(deaths);
    }
    return ctx->deaths;
}

static void *
qualname_of(PyTypeObject *t)
{
    return PyType_HasFeature(t, Py_TPFLAGS_HEAPTYPE) ? (void *)((PyHeapTypeObject *)t)->ht_qualname
                                                     : NULL;
}

/* The marker of a list or tuple, or NULL: not such a one (no error) or an error */
static PyObject *
seq_marker(render_ctx *ctx, PyObject *v)
{
    Py_ssize_t size = Py_SIZE(v), k = size < ctx->max_items ? size : ctx->max_items;
    if (ctx->use_repr || k > 64) {
        return NULL;
    }
    PyObject **items = PyList_CheckExact(v) ? ((PyListObject *)v)->ob_item
                                            : ((PyTupleObject *)v)->ob_item;
    Py_ssize_t nkept = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *item = items[i];
        if (kept_type(Py_TYPE(item))) {
            nkept++;
        }
        else if (!opaque(ctx, item)) {
            return NULL; /* a container, a range, a bytearray: looked into */
        }
    }
    PyObject *deaths = ctx_deaths(ctx);
    if (deaths == NULL) {
        return NULL;
    }
    PyObject *blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(void *) * (SEQ_HEAD + 3 * k));
    PyObject *kept = PyTuple_New(nkept);
    if (blob == NULL || kept == NULL) {
        Py_XDECREF(blob);
        Py_XDECREF(kept);
        return NULL;
    }
    void **p = (void **)PyBytes_AS_STRING(blob);
    p[0] = (void *)Py_TYPE(v);
    p[1] = (void *)size;
    for (Py_ssize_t i = 0, j = 0; i < k; i++) {
        PyObject *item = items[i];
        p[SEQ_HEAD + 3 * i] = (void *)item;
        p[SEQ_HEAD + 3 * i + 1] = (void *)Py_TYPE(item);
        p[SEQ_HEAD + 3 * i + 2] = qualname_of(Py_TYPE(item));
        if (kept_type(Py_TYPE(item))) {
            PyTuple_SET_ITEM(kept, j++, Py_NewRef(item));
        }
    }
    PyObject *marker = PyTuple_Pack(4, ctx->limits, deaths, blob, kept);
    Py_DECREF(blob);
    Py_DECREF(kept);
    return marker;
}

/* 1 when marker (from seq_marker) says v renders as it did then, 0 not, -1 error */
static int
seq_same(render_ctx *ctx, PyObject *marker, PyObject *v)
{
    if (!PyTuple_CheckExact(marker) || PyTuple_GET_SIZE(marker) != 4 ||
        PyTuple_GET_ITEM(marker, 0) != ctx->limits || ctx->use_repr ||
        !(PyList_CheckExact(v) || PyTuple_CheckExact(v))) {
        return 0;
    }
    PyObject *blob = PyTuple_GET_ITEM(marker, 2);
    Py_ssize_t size = Py_SIZE(v), k = size < ctx->max_items ? size : ctx->max_items;
    if (!PyBytes_CheckExact(blob) ||
        PyBytes_GET_SIZE(blob) != (Py_ssize_t)sizeof(void *) * (SEQ_HEAD + 3 * k)) {
        return 0;
    }
    void **p = (void **)PyBytes_AS_STRING(blob);
    if (p[0] != (void *)Py_TYPE(v) || p[1] != (void *)size) {
        return 0;
    }
    PyObject *deaths = ctx_deaths(ctx);
    if (deaths == NULL) {
        return -1;
    }
    PyObject *was = PyTuple_GET_ITEM(marker, 1);
    if (was != deaths) {
        int same = PyObject_RichCompareBool(was, deaths, Py_EQ);
        if (same != 1) {
            return same;
        }
    }
    PyObject **items = PyList_CheckExact(v) ? ((PyListObject *)v)->ob_item
                                            : ((PyTupleObject *)v)->ob_item;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *item = items[i];
        if (p[SEQ_HEAD + 3 * i] != (void *)item || p[SEQ_HEAD + 3 * i + 1] != (void *)Py_TYPE(item) ||
            p[SEQ_HEAD + 3 * i + 2] != qualname_of(Py_TYPE(item))) {
            return 0;
        }
    }
    return 1;
}

/* -- a scope's names and values at a line start -----------------------------
 *
 * What ``dict(names)`` holds, in its order, as pairs of strong references (what
 * rendering reads stays alive while it runs, whatever the program's code that
 * the renderer may run does to the scope). */

typedef struct {
    PyObject **items; /* name, value, name, value ... */
    Py_ssize_t n, cap;
    PyObject *small[64];
} snapshot;

static void
snap_init(snapshot *s)
{
    s->items = s->small;
    s->n = 0;
    s->cap = (Py_ssize_t)(sizeof s->small / sizeof s->small[0]) / 2;
}

static void
snap_free(snapshot *s)
{
    for (Py_ssize_t i = 0; i < 2 * s->n; i++) {
        Py_XDECREF(s->items[i]); /* (a skipped name's value: NULL) */
    }
    if (s->items != s->small) {
        PyMem_Free(s->items);
    }
    snap_init(s);
}

static int
snap_room(snapshot *s, Py_ssize_t more)
{
    if (s->n + more <= s->cap) {
        return 0;
    }
    Py_ssize_t cap = s->cap;
    while (cap < s->n + more) {
        cap *= 2;
    }
    PyObject **items = PyMem_Malloc(sizeof(PyObject *) * (size_t)(2 * cap));
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(items, s->items, sizeof(PyObject *) * (size_t)(2 * s->n));
    if (s->items != s->small) {
        PyMem_Free(s->items);
    }
    s->items = items;
    s->cap = cap;
    return 0;
}

static inline int
snap_add(snapshot *s, PyObject *name, PyObject *value)
{
    if (s->n == s->cap && snap_room(s, 1) < 0) {
        return -1;
    }
    s->items[2 * s->n] = Py_NewRef(name);
    s->items[2 * s->n + 1] = Py_NewRef(value);
    s->n++;
    return 0;
}

/* -- unchanged locals skipped (``changes``; 3.13 and 3.12) -----------------------
 *
 * With ``changes``, a local still bound to the object of a kept type (an
 * immutable builtin) that its state entry keeps renders as it did: it is
 * neither shown nor its entry changed.  So does a local whose entry keeps a
 * marker (an object shown by number, a list or tuple of such items and
 * scalars) that says the value renders as it did (opaque_same, seq_same).
 * scan_into finds that out by looking the name up in the state; a slot cache
 * says it from the frame's slot and the cache alone.  Per depth (kept by the
 * CallLine that forgets that depth's states), it describes one state dict and
 * one code's slots: for each slot, ``last``: the object it was bound to at the
 * last line start when its entry keeps that object (a kept type) or a marker
 * of it, else NULL; ``mark``: that marker (held by the entry), or NULL for a
 * kept type.  A slot is skipped (its entry is the reference's unchanged entry)
 * when its value is ``last`` of a kept type, or is ``last`` and its object
 * marker says it renders as then (the object at that address may be another
 * one: the marker's checks say whether it renders the same), or is any list
 * or tuple its sequence marker says renders as then; any other goes through
 * the pass.  The cache holds the state dict and the code's names (never one at
 * the same address taken for it); the objects in ``last`` are compared, never
 * used (a kept one is held by its entry; an object shown by number is not held
 * by anyone of ours: it may be gone); the markers are held by the state's
 * entries.  It is only used while nothing else changed
 * the state in place: the CallLine drops it before it forgets that depth's
 * state (and parks it), a failed pass drops it, and a pass on a locals' state
 * without a cache (module and class bodies, names set from outside, line
 * starts from ChainTracer's own path) moves ``uncached_epoch`` on, which every
 * cache then fails to match. */

typedef struct {
    PyObject *state, *names; /* the state dict described, the code's co_localsplusnames (held) */
    unsigned long long epoch;
    /* the states (borrowed: a watched dict) whose entry for key (held) was state
     * when the states' watcher's count was state_epoch (see scope_values) */
    PyObject *states, *states_key;
    unsigned long long state_epoch;
    Py_ssize_t n, cap; /* the code's slots; room for that many */
    /* (3.12) the frame's f_locals dict (its address only) as the last pass left
     * it, that dict's version then, and the slots unbound then (by bit; their
     * names not in it): see snap_frame */
    void *fl_dict;
    uint64_t fl_version, fl_unbound;
    PyObject *last[1]; /* by slot: the object (see above) or NULL; then from
                        * last[cap], by slot: its marker, or NULL */
} slotcache;

#define CACHE_MARK(c, i) ((c)->last[(c)->cap + (i)])

/* The slot cache says slot i, bound to value, renders as it did at the last
 * line start (its entry unchanged): 1, else 0 */
static inline int
slot_same(render_ctx *ctx, slotcache *c, int i, PyObject *value)
{
    PyObject *mark = CACHE_MARK(c, i);
    if (mark == NULL) {
        return value == c->last[i];
    }
    int same = PyTuple_GET_SIZE(mark) == 4 ? seq_same(ctx, mark, value)
               : value == c->last[i]      ? opaque_same(ctx, mark, value)
                                          : 0;
    if (same < 0) {
        PyErr_Clear(); /* the pass looks at it again and says what went wrong */
        return 0;
    }
    return same;
}

static unsigned long long uncached_epoch;

/* The locals' states dicts (ChainTracer._prev_locals, a LineStart's) are
 * watched (PyDict_AddWatcher: every change of one, from C or Python, its
 * death included, moves state_epoch on): while state_epoch stays, the state
 * a slot cache describes is still the states' entry for its key, found
 * without looking the key up (a tuple hashed).  -1: no watcher to be had. */
static int state_watcher = -1;
static unsigned long long state_epoch;

static int
state_watched(PyDict_WatchEvent event, PyObject *dict, PyObject *key, PyObject *new_value)
{
    (void)event;
    (void)dict;
    (void)key;
    (void)new_value;
    state_epoch++;
    return 0;
}

/* c describes nothing more (its state let go: a call line forgets it), its
 * room kept for the next frame at its depth */
static void
slotcache_release(slotcache *c)
{
    if (c != NULL) {
        Py_CLEAR(c->state);
    }
}

static void
slotcache_drop(slotcache **c)
{
    if (c != NULL && *c != NULL) {
        slotcache *was = *c;
        *c = NULL;
        Py_XDECREF(was->state);
        Py_XDECREF(was->names);
        Py_XDECREF(was->states_key);
        PyMem_Free(was);
    }
}

/* a name skipped (slot cache): in the snapshot without its value */
static inline int
snap_skip(snapshot *s, PyObject *name)
{
    if (s->n == s->cap && snap_room(s, 1) < 0) {
        return -1;
    }
    s->items[2 * s->n] = Py_NewRef(name);
    s->items[2 * s->n + 1] = NULL;
    s->n++;
    return 0;
}

static int
snap_dict(snapshot *s, PyObject *d)
{
    if (snap_room(s, PyDict_GET_SIZE(d)) < 0) {
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    while (dict_next(d, &pos, &name, &value)) {
        if (snap_add(s, name, value) < 0) {
            return -1;
        }
    }
    return 0;
}

/* dict(names): a dict's items; a frame's locals proxy (3.13) from its items,
 * one pass over the frame's variables (dict() asks the proxy for its keys, then
 * looks each one up by name: the same pairs, in the same order, slower); any
 * other mapping through dict() */
static int
snap_mapping(snapshot *s, PyObject *names)
{
    if (PyDict_CheckExact(names)) {
        return snap_dict(s, names);
    }
    PyObject *d = PyDict_New();
    if (d == NULL) {
        return -1;
    }
    int rc = 0;
#ifdef PyFrameLocalsProxy_Check
    if (PyFrameLocalsProxy_Check(names)) {
        PyObject *items = PyMapping_Items(names);
        if (items == NULL) {
            Py_DECREF(d);
            return -1;
        }
        for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(items); i++) {
            PyObject *pair = PyList_GET_ITEM(items, i);
            if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
                PyDict_SetItem(d, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_TypeError, "a frame's locals: items are not pairs");
                }
                rc = -1;
            }
        }
        Py_DECREF(items);
    }
    else
#endif
    {
        rc = PyDict_Update(d, names);
    }
    if (rc == 0) {
        rc = snap_dict(s, d);
    }
    Py_DECREF(d);
    return rc;
}

#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define DIRECT_LOCALS 1
#define SLOT_CACHE 1
#define FR_CODE(fr) _PyFrame_GetCode(fr)
/* 3.13: a function's f_locals is a FrameLocalsProxy over the frame's fast
 * locals and its extra locals (names set through f_locals or exec that are
 * not fast locals).  Its items, in its order, read from the frame directly
 * (CPython's frame layout, Objects/frameobject.c framelocalsproxy_items): each
 * bound fast local (a cell's or free variable's content), then the extras.
 * c (or NULL): a slot cache of this code's slots: a slot holding the object c
 * says its entry keeps is in the snapshot skipped (its value NULL), an unbound
 * one is forgotten in c.  slot_of (or NULL): each item's slot.
 * 1 done, 0 not such a frame (the caller reads f_locals), -1 error (3.12's
 * also 2: done, without slots). */
static int
snap_frame(snapshot *s, _PyInterpreterFrame *fr, render_ctx *ctx, slotcache *c, int *slot_of)
{
    PyCodeObject *co = _PyFrame_GetCode(fr);
    if (!(co->co_flags & CO_OPTIMIZED)) {
        return 0;
    }
    PyObject **fast = _PyFrame_GetLocalsArray(fr);
    int n = co->co_nlocalsplus;
    if (snap_room(s, n) < 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        PyObject *value = fast[i];
        if (value != NULL) {
            _PyLocals_Kind kind = _PyLocals_GetKind(co->co_localspluskinds, i);
            if ((kind == CO_FAST_FREE || (kind & CO_FAST_CELL)) && PyCell_Check(value)) {
                value = PyCell_GET(value);
            }
        }
        if (value == NULL) {
            if (c != NULL) {
                c->last[i] = CACHE_MARK(c, i) = NULL;
            }
            continue;
        }
        PyObject *name = PyTuple_GET_ITEM(co->co_localsplusnames, i);
        if ((c != NULL && slot_same(ctx, c, i, value) ? snap_skip(s, name)
                                                      : snap_add(s, name, value)) < 0) {
            return -1;
        }
        if (slot_of != NULL) {
            slot_of[s->n - 1] = i;
        }
    }
    /* (only a frame object holds names set from outside) */
    PyObject *extra = fr->frame_obj != NULL ? fr->frame_obj->f_extra_locals : NULL;
    if (extra != NULL && PyDict_GET_SIZE(extra)) {
        return 0; /* names set from outside: the proxy says what it shows */
    }
    return 1;
}
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000 && !defined(Py_GIL_DISABLED)
#define DIRECT_LOCALS 1
/* 3.12: a function's f_locals is a dict the frame keeps (frame->f_locals),
 * brought up to date by every read of it (PyFrame_GetLocals: each fast local
 * in the frame's order set in the dict when bound, deleted from it when not;
 * Objects/frameobject.c _PyFrame_GetLocals).  Its order is therefore its
 * history: a name deleted at one read and bound at a later one moves to the
 * end.  The same update is done here, with the same effect on the dict --
 * created when the frame has none, a name deleted when unbound, set when
 * bound to another object than the dict holds (setting the object it already
 * holds changes nothing of a dict: no version, no watcher event) -- but
 * finding each name's entry by its position first, and without the
 * PyFrame_GetLocals's dict of hidden names made and dropped at each call
 * (functions have none: only module and class bodies inline comprehensions
 * with hidden names).  Then the dict's pairs, in its order, as dict(f_locals)
 * reads them.  Functions whose variables are all plain locals only (no cell
 * or free variable: their contents depend on whether MAKE_CELL ran); any
 * other frame reads f_locals (0).  1 done, 0 not such a frame, -1 error. */
/* the dict's version (each change of a dict gives it a new one, never given
 * before: the same dict at the same version is unchanged) */
static inline uint64_t
dict_version(PyObject *d)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    return ((PyDictObject *)d)->ma_version_tag;
#pragma GCC diagnostic pop
}

/* Whether dropping the dict's reference to old may run code (a finalizer, a
 * weak reference's callback, a container's items freed): not when something
 * else holds it too, nor for the immutable builtins, which free nothing else */
static inline int
drop_may_run_code(PyObject *old)
{
    return old != NULL && Py_REFCNT(old) == 1 && !kept_type(Py_TYPE(old));
}

/* The update, where it can be done without a lookup: a bound name found at
 * its entry by position; an unbound one known to be absent when the dict is
 * still (its version) as this frame's last pass left it (c, changes) and
 * nothing ran since that could have set it.  Then, when every bound name was
 * at its entry in the frame's order, the dict holds exactly those (its size)
 * and no code ran meanwhile (nothing dropped could free anything that runs
 * code), its pairs in its order are the bound slots in slot order: read from
 * the slots, without the dict's second walk. */
static int
snap_frame(snapshot *s, _PyInterpreterFrame *fr, render_ctx *ctx, slotcache *c, int *slot_of)
{
    PyCodeObject *co = fr->f_code;
    int n = co->co_nlocalsplus;
    if (!(co->co_flags & CO_OPTIMIZED) || co->co_ncellvars || co->co_nfreevars ||
        fr->stacktop == 0 || n == 0) { /* (stacktop: -1 while it runs) */
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (_PyLocals_GetKind(co->co_localspluskinds, i) != CO_FAST_LOCAL) {
            return 0;
        }
    }
    PyObject *d = fr->f_locals;
    if (d != NULL && !PyDict_CheckExact(d)) {
        return 0;
    }
    uint64_t absent = 0; /* slots whose names the dict is known not to hold */
    if (d != NULL && c != NULL && n <= 64 && c->fl_dict == (void *)d &&
        c->fl_version == dict_version(d)) {
        absent = c->fl_unbound;
    }
    if (d == NULL) {
        d = fr->f_locals = PyDict_New(); /* the frame's own, as PyFrame_GetLocals makes it */
        if (d == NULL) {
            return -1;
        }
    }
    Py_INCREF(d); /* a value set or deleted may run code (its old value's __del__) */
    PyObject **fast = fr->localsplus;
    PyObject *names = co->co_localsplusnames;
    Py_ssize_t pos = 0; /* the dict's entries in order: mostly the frame's names' order */
    int rc = 0, empty = PyDict_GET_SIZE(d) == 0; /* (a new frame's) nothing to find */
    int in_order = 1, code_ran = 0;
    Py_ssize_t bound = 0;
    uint64_t unbound = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i), *value = fast[i], *key, *held;
        Py_ssize_t at = pos;
        if (value != NULL) {
            bound++;
        }
        else if (i < 64) {
            unbound |= (uint64_t)1 << i;
        }
        if (empty) { /* the frame's names are distinct: each one set is new */
            rc = value == NULL ? 0 : PyDict_SetItem(d, name, value);
            continue;
        }
        if (dict_next(d, &at, &key, &held) && key == name) {
            pos = at; /* its entry, found without hashing */
            if (held == value) {
                continue;
            }
        }
        else if (value != NULL) {
            in_order = 0;
            held = PyDict_GetItemWithError(d, name);
            if (held == NULL && PyErr_Occurred()) {
                rc = -1;
                break;
            }
            if (held == value) {
                continue;
            }
        }
        else if (!code_ran && i < 64 && (absent >> i) & 1) {
            continue; /* not in the dict (as its last pass left it) */
        }
        else {
            held = NULL; /* (looked up by the deletion below) */
        }
        if (value != NULL) {
            code_ran |= drop_may_run_code(held);
            rc = PyDict_SetItem(d, name, value);
        }
        else {
            int in = PyDict_Contains(d, name);
            if (in > 0) {
                PyObject *gone = PyDict_GetItemWithError(d, name);
                code_ran |= gone == NULL || drop_may_run_code(gone);
                rc = PyDict_DelItem(d, name);
            }
            else {
                rc = in;
            }
        }
    }
    if (rc == 0 && fr->frame_obj != NULL) {
        /* as PyFrame_GetLocals says of the frame (a frame without its object
         * has no flag: one made later reads the dict again first) */
        fr->frame_obj->f_fast_as_locals = 1;
    }
    if (c != NULL) { /* (a pass that did not end well leaves nothing known) */
        int known = rc == 0 && !code_ran && n <= 64;
        c->fl_dict = known ? (void *)d : NULL;
        c->fl_version = known ? dict_version(d) : 0;
        c->fl_unbound = unbound;
    }
    if (rc == 0 && in_order && !code_ran && PyDict_GET_SIZE(d) == bound) {
        /* the dict's pairs are the bound slots', in slot order */
        rc = snap_room(s, bound);
        for (int j = 0; rc == 0 && j < n; j++) {
            PyObject *value = fast[j];
            if (value == NULL) {
                if (c != NULL) {
                    c->last[j] = CACHE_MARK(c, j) = NULL;
                }
                continue;
            }
            PyObject *name = PyTuple_GET_ITEM(names, j);
            rc = c != NULL && slot_same(ctx, c, j, value) ? snap_skip(s, name)
                                                          : snap_add(s, name, value);
            if (slot_of != NULL) {
                slot_of[s->n - 1] = j;
            }
        }
        Py_DECREF(d);
        return rc < 0 ? -1 : 1;
    }
    int slotted = rc == 0 && slot_of != NULL;
    if (slotted) {
        /* with the slot cache: the dict's pairs in its order with their slots
         * (each key found among the frame's names, the next slot first: the
         * dict's order is mostly the frame's); a slot holding the object c says
         * its entry keeps is skipped, an unbound one forgotten in c.  A key that
         * is no bound slot's (a name set from outside): the pairs as they are,
         * no slots. */
        rc = snap_room(s, PyDict_GET_SIZE(d));
        Py_ssize_t at = 0, unmatched = 0;
        PyObject *key, *held;
        for (int i = 0; i < n; i++) {
            if (fast[i] != NULL) {
                unmatched++;
            }
            else if (c != NULL) {
                c->last[i] = CACHE_MARK(c, i) = NULL;
            }
        }
        int j = 0;
        while (rc == 0 && dict_next(d, &at, &key, &held)) {
            if (j >= n || PyTuple_GET_ITEM(names, j) != key) {
                for (j = 0; j < n && PyTuple_GET_ITEM(names, j) != key; j++) {
                }
            }
            if (j >= n || fast[j] != held) {
                slotted = 0;
                break;
            }
            rc = c != NULL && slot_same(ctx, c, j, held) ? snap_skip(s, key) : snap_add(s, key, held);
            slot_of[s->n - 1] = j++;
            unmatched--;
        }
        if (unmatched != 0) {
            slotted = 0; /* (a bound slot not in the dict: never, after the update) */
        }
        if (rc == 0 && !slotted) {
            snap_free(s);
        }
    }
    if (rc == 0 && !slotted) {
        rc = snap_dict(s, d);
    }
    Py_DECREF(d);
    return rc < 0 ? -1 : slot_of != NULL && !slotted ? 2 : 1;
}
#define SLOT_CACHE 1
#define FR_CODE(fr) ((fr)->f_code)
#endif

static void
ctx_zero(render_ctx *ctx)
{
    ctx->renderer = NULL;
    ctx->numbers = NULL;
    ctx->limits = NULL;
    ctx->deaths = NULL;
    ctx->last_obj = ctx->last_key = ctx->last_number = NULL;
    buf_init(&ctx->text);
}

/* A name rendered anew in an in-place pass, applied once the pass succeeded */
typedef struct {
    PyObject *name, *old, *kept; /* strong references; old may be NULL */
    Py_ssize_t at;               /* where old was found in prev (PyDict_Next), or -1 */
    Py_ssize_t off, len;         /* its member bytes in the pass's pending buffer */
} update;

/* bytes b's text replaced by n bytes from p: b is only ours (one reference),
 * of that length, never hashed by anyone (a state's member bytes) */
static void
bytes_overwrite(PyObject *b, const char *p, Py_ssize_t n)
{
    memcpy(PyBytes_AS_STRING(b), p, (size_t)n);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    ((PyBytesObject *)b)->ob_shash = -1; /* (its hash, were it ever asked) */
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

/* Apply u to prev: prev's entry for u->name gets the kept value (or marker)
 * and member bytes.  The entry is changed in place when only prev and this
 * pass hold it (nothing else can see it change), its bytes too when only it
 * holds them and the length is the same; else a new entry is set.  0 or -1. */
static int
apply_update(PyObject *prev, update *u, const char *pending)
{
    PyObject *old = u->old, *at_key, *at_value;
    Py_ssize_t at = u->at;
    if (old != NULL && PyTuple_CheckExact(old) && PyTuple_GET_SIZE(old) == 2 &&
        Py_REFCNT(old) == 2 &&
        (at >= 0 ? dict_next(prev, &at, &at_key, &at_value) && at_key == u->name &&
                       at_value == old
                 : PyDict_GetItemWithError(prev, u->name) == old)) {
        PyTupleObject *to = (PyTupleObject *)old;
        PyObject *member = to->ob_item[1];
        if (PyBytes_CheckExact(member) && Py_REFCNT(member) == 1 &&
            PyBytes_GET_SIZE(member) == u->len) {
            bytes_overwrite(member, pending + u->off, u->len);
        }
        else {
            PyObject *m = PyBytes_FromStringAndSize(pending + u->off, u->len);
            if (m == NULL) {
                return -1;
            }
            Py_SETREF(to->ob_item[1], m);
        }
        Py_SETREF(to->ob_item[0], u->kept);
        u->kept = NULL;
        if (!PyObject_GC_IsTracked(old)) {
            PyObject_GC_Track(old); /* it may hold a marker now */
        }
        return 0;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *m = PyBytes_FromStringAndSize(pending + u->off, u->len);
    PyObject *entry = m == NULL ? NULL : PyTuple_Pack(2, u->kept, m);
    Py_XDECREF(m);
    int rc = entry == NULL ? -1 : PyDict_SetItem(prev, u->name, entry);
    Py_XDECREF(entry);
    return rc;
}

/* One scope's members, ``_rendered(dict(names), prev, render)`` and
 * ``_object(fresh, prev if changes else None)`` in one pass over snap (the
 * scope's names and values): the JSON object into out, and
 *   - fresh_out != NULL: the fresh state (a new dict) into *fresh_out;
 *   - fresh_out == NULL: prev updated in place to what fresh would be (the
 *     same entries; only names rendered anew get new contents, names gone are
 *     removed), once the pass succeeded: prev is untouched when it did not.
 * recycled: prev is the state of a frame gone (recycle_state), its entries
 * reused where they render the same but every member shown, as from {}.
 * A name skipped in snap (its value NULL: the slot cache says its entry keeps
 * the object it is bound to) is neither shown nor changed (``changes``, in
 * place only).  kept_out (or NULL): by item not skipped, what prev's entry
 * for it keeps once the pass succeeded (borrowed: held by the entry; the
 * value itself for a kept type, a marker, or not_kept), or NULL (a dunder).
 * 0, -1 (an error set) or UNSUPPORTED (a name or value for the reference: out
 * and prev as they were). */
static int
scan_into(render_ctx *ctx, const snapshot *snap, PyObject *prev, int changes, int recycled,
          PyObject *not_kept, PyObject *encode, PyObject **fresh_out, buf *out, PyObject **kept_out)
{
    Py_ssize_t n = snap->n, nupdates = 0, named = 0, mark = out->len;
    PyObject *fresh = NULL;
    update small[16];
    update *updates = fresh_out != NULL ? NULL : n <= 16 ? small
                      : PyMem_Malloc(sizeof(update) * (size_t)n);
    buf member_buf, pending; /* one member; the members of the updates, one after another */
    buf_init(&member_buf);
    buf_init(&pending);
    int rc = -1;
    if (fresh_out != NULL) {
        fresh = PyDict_New();
        if (fresh == NULL) {
            goto done;
        }
    }
    else if (updates == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (BUF_LIT(out, "{") < 0) {
        goto done;
    }
    int first = 1;
    Py_ssize_t guess = 0; /* prev's entries in order: mostly the snapshot's names' order */
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *name = snap->items[2 * k], *value = snap->items[2 * k + 1];
        if (value == NULL) { /* skipped: its entry, unchanged, the one it would keep */
            named++;
            guess++; /* (the next name's entry, mostly) */
            continue;
        }
        if (kept_out != NULL) {
            kept_out[k] = NULL;
        }
        if (!PyUnicode_CheckExact(name)) {
            rc = UNSUPPORTED; /* the reference says what becomes of it */
            goto done;
        }
        if (dunder(name)) {
            continue;
        }
        named++;
        PyObject *old = NULL, *kept = NULL, *old_member = NULL, *at_key, *at_value;
        Py_ssize_t at = guess; /* where old was found in prev, or -1 */
        if (dict_next(prev, &guess, &at_key, &at_value) && at_key == name) {
            old = at_value; /* the same key object: its entry, without hashing */
        }
        else {
            at = -1;
            old = PyDict_GetItemWithError(prev, name);
            if (old == NULL && PyErr_Occurred()) {
                goto done;
            }
        }
        Py_XINCREF(old); /* held while values render (they may run the renderer's code) */
        if (old != NULL && PyTuple_CheckExact(old) && PyTuple_GET_SIZE(old) == 2) {
            kept = PyTuple_GET_ITEM(old, 0);
            old_member = PyTuple_GET_ITEM(old, 1);
        }
        int keeps = kept_type(Py_TYPE(value));
        int same = old_member != NULL && kept == value && keeps;
        if (!same && old_member != NULL && PyTuple_CheckExact(kept)) {
            same = PyTuple_GET_SIZE(kept) == 4 ? seq_same(ctx, kept, value)
                                               : opaque_same(ctx, kept, value); /* 6 */
            if (same < 0) {
                Py_XDECREF(old);
                goto done;
            }
        }
        const char *m;
        Py_ssize_t m_len;
        PyObject *new_kept = NULL; /* (not same) what the entry keeps: a new reference */
        if (same) {
            m = PyBytes_AS_STRING(old_member);
            m_len = PyBytes_GET_SIZE(old_member);
        }
        else {
            member_buf.len = 0;
            int by_reference = 0, is_opaque = !keeps && opaque(ctx, value);
            PyObject *known = NULL, *json = is_opaque ? memo_find(ctx, value, &known) : NULL;
            Py_ssize_t value_at = 0;
            if (json != NULL) { /* its text and marker remembered (memo_find) */
                int named = name_prefix(&member_buf, name);
                if (named != 0 ||
                    buf_add(&member_buf, PyBytes_AS_STRING(json), PyBytes_GET_SIZE(json)) < 0) {
                    Py_XDECREF(old);
                    rc = named == UNSUPPORTED ? UNSUPPORTED : -1;
                    goto done;
                }
                new_kept = Py_NewRef(known);
            }
            else {
                int r = member(ctx, name, value, encode, &member_buf, &by_reference, &value_at);
                if (r != 0) {
                    Py_XDECREF(old);
                    rc = r; /* UNSUPPORTED or -1 */
                    goto done;
                }
            }
            if (new_kept == NULL && is_opaque && !by_reference) {
                new_kept = opaque_marker(ctx, value);
                if (new_kept != NULL) {
                    memo_keep(value, new_kept, member_buf.p + value_at, member_buf.len - value_at);
                }
            }
            else if (!keeps && !by_reference && (PyList_CheckExact(value) || PyTuple_CheckExact(value))) {
                new_kept = seq_marker(ctx, value); /* NULL: not one whose items say its text */
            }
            if (new_kept == NULL) {
                if (PyErr_Occurred()) {
                    Py_XDECREF(old);
                    goto done;
                }
                new_kept = Py_NewRef(keeps ? value : not_kept);
            }
            m = member_buf.p;
            m_len = member_buf.len;
        }
        /* _object: every member, or (changes) those whose bytes differ from prev's */
        int show = !changes || recycled || old_member == NULL ||
                   !(same || (PyBytes_Check(old_member) && PyBytes_GET_SIZE(old_member) == m_len &&
                              memcmp(PyBytes_AS_STRING(old_member), m, (size_t)m_len) == 0));
        if (show && ((!first && BUF_LIT(out, ",") < 0) || buf_add(out, m, m_len) < 0)) {
            Py_XDECREF(old);
            Py_XDECREF(new_kept);
            goto done;
        }
        first &= !show;
        if (fresh != NULL) {
            PyObject *entry;
            if (same) {
                entry = old; /* held: given to entry */
                old = NULL;
            }
            else {
                PyObject *b = PyBytes_FromStringAndSize(m, m_len);
                entry = b == NULL ? NULL : PyTuple_Pack(2, new_kept, b);
                Py_XDECREF(b);
            }
            Py_XDECREF(old);
            Py_XDECREF(new_kept);
            int set = entry == NULL ? -1 : PyDict_SetItem(fresh, name, entry);
            Py_XDECREF(entry);
            if (set < 0) {
                goto done;
            }
        }
        else if (same) {
            if (kept_out != NULL) {
                kept_out[k] = kept; /* (held by old, which prev keeps) */
            }
            Py_DECREF(old); /* prev keeps it */
        }
        else {
            if (kept_out != NULL) {
                kept_out[k] = new_kept; /* (the entry will hold it) */
            }
            update *u = &updates[nupdates];
            u->off = pending.len;
            u->len = m_len;
            if (buf_add(&pending, m, m_len) < 0) {
                Py_XDECREF(old);
                Py_DECREF(new_kept);
                goto done;
            }
            u->name = Py_NewRef(name);
            u->old = old; /* held */
            u->kept = new_kept;
            u->at = at;
            nupdates++;
        }
    }
    if (BUF_LIT(out, "}") < 0) {
        goto done;
    }
    if (fresh != NULL) {
        *fresh_out = fresh;
        fresh = NULL;
        rc = 0;
        goto done;
    }
    for (Py_ssize_t i = 0; i < nupdates; i++) {
        if (apply_update(prev, &updates[i], pending.p) < 0) {
            goto done; /* (no memory) the caller drops the state */
        }
    }
    if (PyDict_GET_SIZE(prev) != named) { /* names gone since: not in fresh */
        PyObject *keys = PyDict_Keys(prev);
        if (keys == NULL) {
            goto done;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
            PyObject *key = PyList_GET_ITEM(keys, i);
            int in = 0; /* the snapshot's names are unique str (or it went to the reference) */
            for (Py_ssize_t k = 0; !in && k < n; k++) {
                PyObject *name = snap->items[2 * k];
                in = name == key || (PyUnicode_CheckExact(key) &&
                                     PyUnicode_Compare(name, key) == 0);
            }
            if (!in && PyDict_DelItem(prev, key) < 0) {
                Py_DECREF(keys);
                goto done;
            }
        }
        Py_DECREF(keys);
    }
    rc = 0;
done:
    if (updates != NULL) {
        for (Py_ssize_t i = 0; i < nupdates; i++) {
            Py_DECREF(updates[i].name);
            Py_XDECREF(updates[i].old);
            Py_XDECREF(updates[i].kept);
        }
        if (updates != small) {
            PyMem_Free(updates);
        }
    }
    if (rc != 0) {
        out->len = mark;
    }
    Py_XDECREF(fresh);
    buf_free(&member_buf);
    buf_free(&pending);
    return rc;
}

/* (fresh, object), None (the reference's to do), or NULL (an error) */
static PyObject *
scan_names(PyObject *names, PyObject *prev, PyObject *renderer, int changes, PyObject *not_kept,
           PyObject *encode)
{
    if (!PyDict_CheckExact(prev)) {
        PyErr_SetString(PyExc_TypeError, "scan: prev must be a dict");
        return NULL;
    }
    snapshot snap;
    snap_init(&snap);
    if (snap_mapping(&snap, names) < 0) { /* dict(names) */
        snap_free(&snap);
        return NULL;
    }
    PyObject *result = NULL, *fresh = NULL;
    render_ctx ctx;
    ctx_zero(&ctx);
    buf out;
    buf_init(&out);
    if (ctx_init(&ctx, renderer) == 0) {
        int rc = scan_into(&ctx, &snap, prev, changes, 0, not_kept, encode, &fresh, &out, NULL);
        if (rc == UNSUPPORTED) {
            result = Py_NewRef(Py_None);
        }
        else if (rc == 0) {
            PyObject *obj = PyBytes_FromStringAndSize(out.p, out.len);
            if (obj != NULL) {
                result = PyTuple_Pack(2, fresh, obj);
                Py_DECREF(obj);
            }
        }
    }
    Py_XDECREF(fresh);
    ctx_free(&ctx);
    buf_free(&out);
    snap_free(&snap);
    return result;
}

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "scan(names, prev, renderer, changes, not_kept, encode) takes 6 arguments");
        return NULL;
    }
    int changes = PyObject_IsTrue(args[3]);
    if (changes < 0) {
        return NULL;
    }
    return scan_names(args[0], args[1], args[2], changes, args[4], args[5]);
}

/* frame_of(code): the innermost live frame running code, or None */
static PyObject *
frame_of(PyObject *module, PyObject *code)
{
    PyFrameObject *f = PyEval_GetFrame(); /* borrowed */
    Py_XINCREF(f);
    while (f != NULL) {
        PyCodeObject *c = PyFrame_GetCode(f);
        int found = (PyObject *)c == code;
        Py_DECREF(c);
        if (found) {
            return (PyObject *)f;
        }
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    Py_RETURN_NONE;
}

/* The frame of a line start: its code, and its frame object when one was
 * needed (made, as frame_of makes it, only then: 3.13 and 3.12 read a
 * function's locals from the interpreter's frame itself, which a frame object
 * would only wrap -- PyEval_GetFrame made one per call for each new frame's
 * first line start, and the frame's end freed it). */
typedef struct {
    PyObject *code;
    PyFrameObject *obj; /* held, or NULL: not made yet */
#ifdef DIRECT_LOCALS
    _PyInterpreterFrame *fr; /* the innermost live frame running code */
#endif
} frame_ref;

/* f's frame object (borrowed), made when needed; NULL with an error set */
static PyFrameObject *
fref_object(frame_ref *f)
{
    if (f->obj == NULL) {
        PyObject *o = frame_of(NULL, f->code);
        if (o == NULL) {
            return NULL;
        }
        if (o == Py_None) {
            Py_DECREF(o);
            PyErr_SetString(PyExc_RuntimeError, "line: the line start's frame is gone");
            return NULL;
        }
        f->obj = (PyFrameObject *)o;
    }
    return f->obj;
}

#ifdef DIRECT_LOCALS
/* The innermost live interpreter frame running code (frame_of's, without its
 * frame object: the frames PyEval_GetFrame and PyFrame_GetBack step through,
 * the incomplete ones skipped), or NULL */
static _PyInterpreterFrame *
iframe_of(PyObject *code)
{
    _PyInterpreterFrame *fr = _PyThreadState_GetFrame(PyThreadState_Get());
    while (fr != NULL && (PyObject *)FR_CODE(fr) != code) {
        fr = _PyFrame_GetFirstComplete(fr->previous);
    }
    return fr;
}
#endif

static PyObject *empty_prev; /* prev of a scope seen first: {} */

/* A call line's mark at its depth (CallLine's, see "frames gone, marked"
 * below): the state of the frame gone there, left in the states under key
 * (both held), or state NULL. */
typedef struct {
    PyObject *state, *key;
} gone_mark;

/* One scope's values: prev = state.get(key, {}); (fresh, object) = scan, or
 * fallback(names, prev, renderer, changes) where the reference renders;
 * state[key] = fresh; ``,"<member>":<object>`` added to out.  The scan updates
 * the scope's state in place (see scan_into): the same entries as a fresh one.
 * names: the scope's mapping, or NULL for frame's f_locals (read from the
 * frame itself where it can be: snap_frame).  spare (or NULL): where a state
 * of a frame gone may wait (recycle_state); taken in place of {} when state
 * has none for key.  gone (or NULL): the call line's mark at this depth; when
 * the state found for key is the one it marks, that state is a frame gone's,
 * reused in place as a spare is (every member shown) and unmarked once the
 * pass succeeded.  is_locals: the scope is a frame's locals; cachep (or
 * NULL): where the slot cache of its depth is (a function's locals with
 * ``changes``, 3.13 and 3.12: used when it describes this state and code,
 * else made anew; any other locals' pass moves uncached_epoch on).  watched:
 * state is watched (state_watched): while nothing changed it since the
 * cache saw its entry for key, that entry is the cache's state, taken
 * without the lookup. */
static int
scope_values(buf *out, const char *member, PyObject *names, frame_ref *frame,
             PyObject *state, PyObject *key, int changes, render_ctx *ctx, PyObject *not_kept,
             PyObject *encode, PyObject *fallback, PyObject **spare, gone_mark *gone,
             int is_locals, slotcache **cachep, int watched)
{
    if (!PyDict_CheckExact(state)) {
        PyErr_SetString(PyExc_TypeError, "line: the values' state must be a dict");
        return -1;
    }
    PyObject *prev = NULL; /* borrowed */
#ifdef SLOT_CACHE
    slotcache *known = cachep != NULL ? *cachep : NULL;
    if (watched && names == NULL && changes && known != NULL && known->state != NULL &&
        known->states == state && known->states_key == key && known->state_epoch == state_epoch) {
        prev = known->state; /* nothing changed the states since: still their entry for key */
    }
#endif
    if (prev == NULL) {
        prev = PyDict_GetItemWithError(state, key);
        if (prev == NULL && PyErr_Occurred()) {
            return -1;
        }
    }
    unsigned long long states_seen = state_epoch; /* (what the pass may run could change them) */
    int fresh_prev = prev == NULL || !PyDict_CheckExact(prev), recycled = 0, gone_here = 0;
    if (gone != NULL && gone->state != NULL) {
        if (!fresh_prev && prev == gone->state) {
            gone_here = recycled = 1; /* a frame gone's, still in the states: reused there */
        }
        else if (gone->key == key) { /* (no more the states' entry for key: nothing to mark) */
            Py_CLEAR(gone->state);
            Py_CLEAR(gone->key);
        }
    }
    if (fresh_prev && spare != NULL && *spare != NULL) {
        prev = *spare; /* taken: a frame gone's state, its entries reused */
        *spare = NULL;
        recycled = 1;
    }
    else {
        prev = fresh_prev ? PyDict_New() : Py_NewRef(prev);
    }
    if (prev == NULL) {
        return -1;
    }
    Py_XINCREF(names);
    snapshot snap;
    snap_init(&snap);
    Py_ssize_t mark = out->len;
    int rc = buf_add(out, member, (Py_ssize_t)strlen(member)), got = 0;
    /* the slot cache (3.13, changes, a function's locals): c when it describes
     * this state and code; slot_of and kept, by item, for the one made after */
    slotcache *c = NULL;
    int caching = 0, slot_small[64], *slot_of = NULL;
    PyObject *kept_small[64], **kept = NULL;
    Py_ssize_t nslots = 0;
    PyObject *slot_names = NULL;
#ifdef SLOT_CACHE
    if (rc == 0 && names == NULL && changes && cachep != NULL) {
        PyCodeObject *co = (PyCodeObject *)frame->code;
        nslots = co->co_nlocalsplus;
        slot_names = co->co_localsplusnames;
        slot_of = nslots <= 64 ? slot_small : PyMem_Malloc(sizeof(int) * (size_t)nslots);
        kept = nslots <= 64 ? kept_small : PyMem_Malloc(sizeof(PyObject *) * (size_t)nslots);
        caching = slot_of != NULL && kept != NULL;
        c = *cachep;
        if (c != NULL && (fresh_prev || recycled || c->state != prev || c->names != slot_names ||
                          c->n != nslots || c->epoch != uncached_epoch)) {
            c = NULL; /* another state or code, or the state changed since: made anew */
        }
    }
#endif
    if (!caching) {
        slotcache_drop(cachep);
        c = NULL;
        if (is_locals) {
            uncached_epoch++; /* a locals' state changed without its cache */
        }
    }
#ifdef DIRECT_LOCALS
    if (rc == 0 && names == NULL) {
        got = snap_frame(&snap, frame->fr, ctx, c, caching ? slot_of : NULL);
        if (got <= 0) {
            snap_free(&snap);
            rc = got;
        }
    }
#endif
    if (got == 2) { /* (3.12) the frame's names in another order: no slots */
        got = 1;
        caching = 0;
        slotcache_drop(cachep);
    }
    if (rc == 0 && !got) {
        if (caching) { /* names set from outside: f_locals says */
            caching = 0;
            slotcache_drop(cachep);
            uncached_epoch++;
        }
        if (names == NULL) {
            PyFrameObject *f = fref_object(frame);
            names = f == NULL ? NULL : PyFrame_GetLocals(f);
        }
        rc = names == NULL ? -1 : snap_mapping(&snap, names); /* dict(names) */
    }
    int all_skipped = rc == 0 && caching && !recycled && !fresh_prev &&
                      PyDict_GET_SIZE(prev) == snap.n; /* (no name gone, if all skipped) */
    for (Py_ssize_t k = 0; all_skipped && k < snap.n; k++) {
        all_skipped = snap.items[2 * k + 1] == NULL;
    }
    if (all_skipped) { /* the pass would show nothing and change nothing */
        rc = BUF_LIT(out, "{}");
    }
    else if (rc == 0) {
        rc = scan_into(ctx, &snap, prev, changes, recycled, not_kept, encode, NULL, out,
                       caching ? kept : NULL);
    }
    int states_same = states_seen == state_epoch;
    if (rc == 0) {
        rc = fresh_prev ? PyDict_SetItem(state, key, prev) : 0;
    }
    if (rc == 0 && gone_here) { /* the state is this frame's now */
        Py_CLEAR(gone->state);
        Py_CLEAR(gone->key);
    }
    if (caching && rc == 0) { /* prev is the state now: the cache says what it keeps */
        if (c == NULL) {
            c = *cachep;
            if (c == NULL || c->cap < nslots) {
                slotcache_drop(cachep);
                c = PyMem_Malloc(sizeof(slotcache) + sizeof(PyObject *) * (size_t)(2 * nslots));
                if (c != NULL) {
                    c->state = c->names = c->states = c->states_key = NULL;
                    c->cap = nslots;
                    c->fl_dict = NULL;
                }
                *cachep = c;
            }
            if (c != NULL) {
                c->n = nslots;
                Py_XSETREF(c->state, Py_NewRef(prev));
                Py_XSETREF(c->names, Py_NewRef(slot_names));
                c->epoch = uncached_epoch;
                memset(c->last, 0, sizeof(PyObject *) * (size_t)nslots);
                memset(&CACHE_MARK(c, 0), 0, sizeof(PyObject *) * (size_t)nslots);
            }
        }
        if (c != NULL) { /* the states' entry for key is prev: as of now, when watched */
            c->states = watched && states_same ? state : NULL;
            Py_XSETREF(c->states_key, Py_NewRef(key));
            c->state_epoch = state_epoch;
        }
        for (Py_ssize_t k = 0; c != NULL && k < snap.n; k++) {
            PyObject *value = snap.items[2 * k + 1], *keeps = kept[k];
            if (value == NULL) {
                continue; /* skipped: as the cache says */
            }
            int slot = slot_of[k];
            if (keeps == value) { /* a kept type: the entry keeps the object */
                c->last[slot] = value;
                CACHE_MARK(c, slot) = NULL;
            }
            else if (keeps != NULL && PyTuple_CheckExact(keeps) &&
                     (PyTuple_GET_SIZE(keeps) == 4 || PyTuple_GET_SIZE(keeps) == 6)) {
                c->last[slot] = value; /* a marker of it: what its rendering depends on */
                CACHE_MARK(c, slot) = keeps;
            }
            else {
                c->last[slot] = CACHE_MARK(c, slot) = NULL;
            }
        }
    }
    else if (caching) {
        slotcache_drop(cachep); /* (the state may be half changed) */
    }
    snap_free(&snap);
    if (slot_of != slot_small) {
        PyMem_Free(slot_of);
    }
    if (kept != kept_small) {
        PyMem_Free(kept);
    }
    if (rc != UNSUPPORTED) {
        Py_DECREF(prev);
        Py_XDECREF(names);
        return rc;
    }
    /* the reference's, from prev as it was (untouched) */
    out->len = mark;
    if (names == NULL) {
        PyFrameObject *f = fref_object(frame);
        names = f == NULL ? NULL : PyFrame_GetLocals(f);
    }
    PyObject *call[4] = {names, fresh_prev || recycled ? empty_prev : prev, ctx->renderer,
                         changes ? Py_True : Py_False};
    PyObject *done = names == NULL ? NULL : PyObject_Vectorcall(fallback, call, 4, NULL);
    Py_DECREF(prev);
    Py_XDECREF(names);
    if (done == NULL) {
        return -1;
    }
    rc = -1;
    if (!PyTuple_Check(done) || PyTuple_GET_SIZE(done) != 2 ||
        !PyBytes_Check(PyTuple_GET_ITEM(done, 1))) {
        PyErr_SetString(PyExc_TypeError, "line: a scope's values are not (fresh, bytes)");
    }
    else if (PyDict_SetItem(state, key, PyTuple_GET_ITEM(done, 0)) == 0) {
        PyObject *obj = PyTuple_GET_ITEM(done, 1);
        if (gone_here) { /* (replaced: the frame gone's state is out of the states) */
            Py_CLEAR(gone->state);
            Py_CLEAR(gone->key);
        }
        rc = buf_add(out, member, (Py_ssize_t)strlen(member));
        if (rc == 0) {
            rc = buf_add(out, PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj));
        }
    }
    Py_DECREF(done);
    return rc;
}

/* line(code, prefix, suffix, gas, depth, thread, locals_state, locals_mode,
 *      globals_state, globals_mode, renderer, not_kept, encode, fallback) -> body
 *
 * A line start's op line body with its values: ChainTracer._with_values's
 * ``op_body(prefix, gas, depth, suffix + _values(...))`` in one call.  A mode
 * is 0 (off), 1 (on) or 2 (changes); the states are ChainTracer's
 * ``_prev_locals`` (keyed (thread, depth)) and ``_prev_globals`` (keyed by
 * id of the module's dict); fallback is the reference ``_scan``. */

typedef struct {
    PyObject *lstate, *gstate; /* the states (dicts) */
    long lmode, gmode;
    PyObject *not_kept, *encode, *fallback;
    int watched; /* lstate is watched by state_watcher (a LineStart's) */
} values_args;

static int line_into(buf *body, PyObject *code, const char *prefix, Py_ssize_t prefix_len,
                     const char *suffix, Py_ssize_t suffix_len, long long g, long long d,
                     PyObject *lkey, PyObject *renderer, const values_args *va,
                     PyObject **spare, gone_mark *gone, slotcache **cache);

/* gas and depth as C values: 0, or -1 with an error set */
static int
gas_depth(PyObject *gas, PyObject *depth, long long *g, long long *d)
{
    int overflow_gas, overflow_depth;
    *g = PyLong_AsLongLongAndOverflow(gas, &overflow_gas);
    *d = PyLong_AsLongLongAndOverflow(depth, &overflow_depth);
    if ((*g == -1 || *d == -1) && PyErr_Occurred()) {
        return -1;
    }
    if (overflow_gas || overflow_depth) {
        PyErr_SetString(PyExc_OverflowError, "line: gas or depth past 64 bits");
        return -1;
    }
    return 0;
}

static PyObject *
line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "line takes 14 arguments");
        return NULL;
    }
    PyObject *code = args[0], *prefix = args[1], *suffix = args[2];
    values_args va = {args[6], args[8], PyLong_AsLong(args[7]), PyLong_AsLong(args[9]),
                      args[11], args[12], args[13], 0};
    if ((va.lmode == -1 || va.gmode == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyBytes_Check(prefix) || !PyBytes_Check(suffix)) {
        PyErr_SetString(PyExc_TypeError, "line: prefix and suffix must be bytes");
        return NULL;
    }
    long long g, d;
    if (gas_depth(args[3], args[4], &g, &d) < 0) {
        return NULL;
    }
    buf body;
    buf_init(&body);
    PyObject *result = NULL, *lkey = PyTuple_Pack(2, args[5], args[4]); /* (thread, depth) */
    if (lkey != NULL &&
        line_into(&body, code, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix),
                  PyBytes_AS_STRING(suffix), PyBytes_GET_SIZE(suffix), g, d, lkey, args[10],
                  &va, NULL, NULL, NULL) == 0) {
        result = PyBytes_FromStringAndSize(body.p, body.len);
    }
    Py_XDECREF(lkey);
    buf_free(&body);
    return result;
}

/* line()'s work: the body of a line start's op line with its values, into
 * body (empty); lkey: the locals' state key (thread, depth); spare, gone, cache: see
 * scope_values; 0 or -1 */
static int
line_into(buf *body, PyObject *code, const char *prefix, Py_ssize_t prefix_len,
          const char *suffix, Py_ssize_t suffix_len, long long g, long long d, PyObject *lkey,
          PyObject *renderer, const values_args *va, PyObject **spare, gone_mark *gone,
          slotcache **cache)
{
    buf vals;
    buf_init(&vals);
    render_ctx ctx;
    ctx_zero(&ctx);
    frame_ref frame;
    memset(&frame, 0, sizeof frame);
    frame.code = code;
    PyObject *names = NULL, *key = NULL;
    int rc = -1, found;
#ifdef DIRECT_LOCALS
    frame.fr = iframe_of(code);
    found = frame.fr != NULL;
#else
    PyObject *o = frame_of(NULL, code);
    if (o == NULL) {
        return -1;
    }
    found = o != Py_None;
    if (found) {
        frame.obj = (PyFrameObject *)o;
    }
    else {
        Py_DECREF(o);
    }
#endif
    if (found) {
        if (ctx_init(&ctx, renderer) < 0) {
            goto done;
        }
        /* a function's f_locals (3.13: a new proxy each time; 3.12: its dict) is
         * never its globals: its locals are read from the frame where they can be
         * (snap_frame) */
        int optimized = (((PyCodeObject *)code)->co_flags & CO_OPTIMIZED) != 0;
#ifndef DIRECT_LOCALS
        optimized = 0;
#endif
        if (!optimized) {
            PyFrameObject *f = fref_object(&frame);
            names = f == NULL ? NULL : PyFrame_GetLocals(f);
            if (names == NULL) {
                goto done;
            }
        }
        if (va->lmode &&
            scope_values(&vals, BT_LOCALS_MEMBER, names, &frame, va->lstate, lkey, va->lmode == 2,
                         &ctx, va->not_kept, va->encode, va->fallback, spare, gone, 1, cache,
                         va->watched) < 0) {
            goto done;
        }
        if (va->gmode) {
            PyFrameObject *f = fref_object(&frame);
            PyObject *globals = f == NULL ? NULL : PyFrame_GetGlobals(f);
            if (globals == NULL) {
                goto done;
            }
            int module_level = 0;
            if (optimized) {
                module_level = 0;
            }
            else if (va->lmode) { /* the reference reads f_locals again: the same mapping */
                PyObject *again = PyFrame_GetLocals(f);
                module_level = again == globals;
                Py_XDECREF(again);
                if (again == NULL) {
                    Py_DECREF(globals);
                    goto done;
                }
            }
            else {
                module_level = names == globals;
            }
            int done_g = 0;
            if (!module_level) {
                key = PyLong_FromVoidPtr(globals);
                done_g = key == NULL ? -1
                                     : scope_values(&vals, BT_GLOBALS_MEMBER, globals, &frame,
                                                    va->gstate, key, va->gmode == 2, &ctx,
                                                    va->not_kept, va->encode, va->fallback,
                                                    NULL, NULL, 0, NULL, 0);
            }
            Py_DECREF(globals);
            if (done_g < 0) {
                goto done;
            }
        }
    }
    opline_layout l;
    opline_measure(&l, (size_t)prefix_len, g, d, (size_t)suffix_len + (size_t)vals.len);
    if (buf_room(body, (Py_ssize_t)l.len) < 0) {
        goto done;
    }
    /* the body up to the suffix's end, then the values */
    opline_write(body->p, &l, prefix, (size_t)prefix_len, suffix, (size_t)suffix_len);
    memcpy(body->p + l.len - (size_t)vals.len, vals.p, (size_t)vals.len);
    body->len = (Py_ssize_t)l.len;
    rc = 0;
done:
    Py_XDECREF(key);
    Py_XDECREF(names);
    Py_XDECREF(frame.obj);
    ctx_free(&ctx);
    buf_free(&vals);
    return rc;
}

/* -- recycled states ------------------------------------------------------------
 *
 * A call line forgets the locals kept for its (thread, depth) (``_call``: the
 * new frame's first line start shows every local, as from {}).  Freeing that
 * state and making a new one at the next line start costs more than the
 * locals' rendering on small functions called often, so CallLine parks the
 * dict it took out of the state (by depth, when nothing else holds it) and
 * that line start takes it in place of {}: the same bytes (every member shown),
 * but its entries reused where a value renders as one of the frame gone did
 * (the same kept object, or a marker that says so) and changed in place
 * otherwise.  It keeps only what a state keeps (immutable builtins and
 * markers, never the program's other objects), and only until the next line
 * start at that depth or the next call line there. */

#define SPARES 64
typedef struct CallLine CallLine;
static PyTypeObject *callline_type; /* (the module's; borrowed) */

/* where the state of the frame gone at depth waits, or NULL */
static PyObject **callline_spare(PyObject *calls, long long depth);
/* where the slot cache of depth is, or NULL */
static slotcache **callline_cache(PyObject *calls, long long depth);
/* the call line's mark at depth, or NULL */
static gone_mark *callline_gone(PyObject *calls, long long depth);

/* -- LineStart: a line start with values, from the stepper's hook ------------
 *
 * LineStart(tracer, slow, sites, write, locals_state, locals_mode,
 *           globals_state, globals_mode, renderer_type, not_kept, encode,
 *           fallback) is a ChainTracer's ``fast_call`` when it records values:
 * called as ``(vm, event)`` for every event the hook does not write itself,
 * it writes a line start seen before (its pieces in ``sites``, keyed by id of
 * the event) as ChainTracer._with_values does --
 *     write(line(code, prefix, suffix + thread, vm.gas, vm.depth, vm.thread, ...))
 * -- and gives everything else to ``slow(vm, event)`` (``_with_values``): a
 * site not seen, the size limit reached, the trace sealed (or this process a
 * fork's child), code unknown, another renderer.  When ``write`` is a line
 * writer's ``line`` (a sink, events/csrc/sink.h), the body goes to its C entry
 * from a buffer of ours.  The stepper's hook calls ``line_start`` below (its
 * type's ``_line_start_api``) with gas and depth as C values, without a call. */

#define SEEN_SITES 64
#define KEYS_CACHED 64

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *tracer, *slow, *sites, *write, *renderer_type;
    values_args va;
    const bt_sink_api *write_api; /* write's C entry, or NULL */
    PyObject *write_sink;         /* write's self (write holds it) */
    /* sites seen: event -> its pieces (strong references; a site's pieces are
     * set once, with the event kept alive in them: the same for good) */
    PyObject *seen_event[SEEN_SITES], *seen_pieces[SEEN_SITES];
    /* the tracer's state, told by it when it changes (ChainTracer._values_state):
     * nothing more written (sealed, a fork's child, size limit); lines name threads */
    char stopped, multi;
    PyObject *calls; /* the CallLine whose spare states line starts take, or NULL */
} LineStart;

/* pieces of `event`, borrowed: from the seen cache, else sites (and cached) */
static PyObject *
linestart_pieces(LineStart *self, PyObject *event)
{
    size_t slot = ((uintptr_t)event >> 4) % SEEN_SITES;
    if (self->seen_event[slot] == event) {
        return self->seen_pieces[slot];
    }
    PyObject *key = PyLong_FromVoidPtr(event);
    if (key == NULL) {
        return NULL;
    }
    PyObject *pieces = PyDict_GetItemWithError(self->sites, key); /* borrowed */
    Py_DECREF(key);
    if (pieces != NULL && PyTuple_CheckExact(pieces) && PyTuple_GET_SIZE(pieces) == 4 &&
        PyTuple_GET_ITEM(pieces, 2) == event) {
        Py_XSETREF(self->seen_event[slot], Py_NewRef(event));
        Py_XSETREF(self->seen_pieces[slot], Py_NewRef(pieces));
    }
    return pieces;
}

/* the locals' state keys (thread, depth) of one thread, by depth: the same key
 * object each time, for line starts and call lines alike (a state's lookup and
 * a call line's pop compare it by identity) */
static PyObject *keys_thread, *keys_cache[KEYS_CACHED];

/* The locals' state key (thread, depth), a new reference; depth: d as an int,
 * or NULL (made when needed) */
static PyObject *
state_key(PyObject *thread, PyObject *depth, long long d)
{
    if (d < 0 || d >= KEYS_CACHED || keys_cache[d] == NULL || keys_thread != thread) {
        PyObject *made = depth != NULL ? Py_NewRef(depth) : PyLong_FromLongLong(d);
        PyObject *key = made == NULL ? NULL : PyTuple_Pack(2, thread, made);
        Py_XDECREF(made);
        if (key == NULL || d < 0 || d >= KEYS_CACHED) {
            return key;
        }
        if (keys_thread != thread) {
            for (int i = 0; i < KEYS_CACHED; i++) {
                Py_CLEAR(keys_cache[i]);
            }
            Py_XSETREF(keys_thread, Py_NewRef(thread));
        }
        keys_cache[d] = key;
    }
    return Py_NewRef(keys_cache[d]);
}

static PyObject *s_renderer, *s_gas, *s_depth, *s_thread;

static PyObject *
linestart_slow(LineStart *self, PyObject *const *args)
{
    return PyObject_Vectorcall(self->slow, args, 2, NULL);
}

/* Write the line start `event` of vm with its values when it is one seen
 * before and the tracer still writes: 1 written, 0 not (slow's to do), -1
 * error.  have_gas: g and d are vm's gas and depth (from the hook), else they
 * are read from vm. */
static int
linestart_write(LineStart *self, PyObject *vm, PyObject *event, int have_gas, long long g,
                long long d)
{
    PyObject *pieces = linestart_pieces(self, event); /* borrowed */
    if (pieces == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyTuple_CheckExact(pieces) || PyTuple_GET_SIZE(pieces) != 4 ||
        !PyBytes_Check(PyTuple_GET_ITEM(pieces, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(pieces, 1)) ||
        PyTuple_GET_ITEM(pieces, 3) == Py_None) {
        return 0;
    }
    if (self->stopped) { /* sealed, a fork's child, the size limit: slow's to say */
        return 0;
    }
    PyObject *vdict = NULL;
    Py_INCREF(pieces); /* the sites may change while values render */
    int rc = -1;
    PyObject *renderer = NULL, *gas = NULL, *depth = NULL, *thread = NULL, *lkey = NULL;
    buf suffix, body;
    buf_init(&suffix);
    buf_init(&body);
    vdict = plain_dict(vm);
    renderer = vdict == NULL && PyErr_Occurred() ? NULL
                                                 : attr_hinted(vm, vdict, s_renderer, &hint_renderer);
    if (renderer == NULL) {
        goto done;
    }
    if ((PyObject *)Py_TYPE(renderer) != self->renderer_type) {
        rc = 0;
        goto done;
    }
    int is_multi = self->multi;
    if ((thread = attr_hinted(vm, vdict, s_thread, &hint_thread)) == NULL) {
        goto done;
    }
    if (have_gas) {
        depth = PyLong_FromLongLong(d);
    }
    else if ((gas = PyObject_GetAttr(vm, s_gas)) == NULL ||
             (depth = PyObject_GetAttr(vm, s_depth)) == NULL || gas_depth(gas, depth, &g, &d) < 0) {
        goto done;
    }
    if (depth == NULL) {
        goto done;
    }
    /* the suffix, then ChainTracer._thread's ,"thread":N when lines name threads */
    PyObject *suf = PyTuple_GET_ITEM(pieces, 1);
    if (buf_add(&suffix, PyBytes_AS_STRING(suf), PyBytes_GET_SIZE(suf)) < 0) {
        goto done;
    }
    if (is_multi) {
        int overflow;
        long long t = PyLong_AsLongLongAndOverflow(thread, &overflow);
        if ((t == -1 && PyErr_Occurred()) || overflow) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_OverflowError, "LineStart: thread past 64 bits");
            }
            goto done;
        }
        if (BUF_LIT(&suffix, BT_THREAD_MEMBER) < 0 || buf_int(&suffix, t) < 0) {
            goto done;
        }
    }
    PyObject *prefix = PyTuple_GET_ITEM(pieces, 0);
    lkey = state_key(thread, depth, d);
    if (lkey == NULL ||
        line_into(&body, PyTuple_GET_ITEM(pieces, 3), PyBytes_AS_STRING(prefix),
                  PyBytes_GET_SIZE(prefix), suffix.p, suffix.len, g, d, lkey, renderer,
                  &self->va, callline_spare(self->calls, d), callline_gone(self->calls, d),
                  callline_cache(self->calls, d)) < 0) {
        goto done;
    }
    if (self->write_api != NULL) {
        rc = self->write_api->line(self->write_sink, body.p, (size_t)body.len) < 0 ? -1 : 1;
    }
    else {
        PyObject *bytes = PyBytes_FromStringAndSize(body.p, body.len);
        PyObject *r = bytes == NULL ? NULL : PyObject_CallOneArg(self->write, bytes);
        Py_XDECREF(bytes);
        Py_XDECREF(r);
        rc = r == NULL ? -1 : 1;
    }
done:
    Py_XDECREF(vdict);
    Py_DECREF(pieces);
    Py_XDECREF(renderer);
    Py_XDECREF(gas);
    Py_XDECREF(depth);
    Py_XDECREF(thread);
    Py_XDECREF(lkey);
    buf_free(&suffix);
    buf_free(&body);
    return rc;
}

static PyObject *
linestart_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    LineStart *self = (LineStart *)callable;
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "LineStart takes two arguments: vm, event");
        return NULL;
    }
    if (self->tracer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "LineStart was cleared");
        return NULL;
    }
    int done = linestart_write(self, args[0], args[1], 0, 0, 0);
    if (done != 0) {
        return done < 0 ? NULL : Py_NewRef(Py_None);
    }
    return linestart_slow(self, args);
}

/* bt_line_start_api.line_start: the hook's call with gas and depth in hand */
static int
linestart_api(PyObject *fast_call, PyObject *vm, PyObject *event, long long gas, long long depth)
{
    LineStart *self = (LineStart *)fast_call;
    if (self->tracer == NULL) {
        return 0; /* cleared: the call says so */
    }
    return linestart_write(self, vm, event, 1, gas, depth);
}

static const bt_line_start_api linestart_api_table = {linestart_api};

static PyObject *
linestart_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *tracer, *slow, *sites, *write, *lstate, *gstate, *renderer_type, *not_kept, *encode,
        *fallback;
    long lmode, gmode;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "LineStart takes no keywords");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOO!OO!lO!lOOOO:LineStart", &tracer, &slow, &PyDict_Type, &sites,
                          &write, &PyDict_Type, &lstate, &lmode, &PyDict_Type, &gstate, &gmode,
                          &renderer_type, &not_kept, &encode, &fallback)) {
        return NULL;
    }
    LineStart *self = (LineStart *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = linestart_vectorcall;
    self->tracer = Py_NewRef(tracer);
    self->slow = Py_NewRef(slow);
    self->sites = Py_NewRef(sites);
    self->write = Py_NewRef(write);
    self->va.lstate = Py_NewRef(lstate);
    self->va.gstate = Py_NewRef(gstate);
    self->renderer_type = Py_NewRef(renderer_type);
    self->va.not_kept = Py_NewRef(not_kept);
    self->va.encode = Py_NewRef(encode);
    self->va.fallback = Py_NewRef(fallback);
    self->va.lmode = lmode;
    self->va.gmode = gmode;
    self->va.watched = 0;
#ifdef SLOT_CACHE
    /* (changes only: the shortcut is the slot cache's; never unwatched: another
     * LineStart may share the dict) */
    if (lmode == 2 && state_watcher >= 0 && PyDict_CheckExact(lstate)) {
        if (PyDict_Watch(state_watcher, lstate) == 0) {
            self->va.watched = 1;
        }
        else {
            PyErr_Clear();
        }
    }
#endif
    self->write_sink = NULL;
    self->write_api = bt_sink_of(write, 1, &self->write_sink);
    if (self->write_api != NULL && self->write_api->line == NULL) {
        self->write_api = NULL;
        self->write_sink = NULL;
    }
    return (PyObject *)self;
}

static int
linestart_traverse(LineStart *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->tracer);
    Py_VISIT(self->slow);
    Py_VISIT(self->sites);
    Py_VISIT(self->write);
    Py_VISIT(self->va.lstate);
    Py_VISIT(self->va.gstate);
    Py_VISIT(self->renderer_type);
    Py_VISIT(self->va.not_kept);
    Py_VISIT(self->va.encode);
    Py_VISIT(self->va.fallback);
    Py_VISIT(self->calls);
    for (int i = 0; i < SEEN_SITES; i++) {
        Py_VISIT(self->seen_event[i]);
        Py_VISIT(self->seen_pieces[i]);
    }
    return 0;
}

static int
linestart_clear(LineStart *self)
{
    Py_CLEAR(self->tracer);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->sites);
    self->write_api = NULL;
    self->write_sink = NULL;
    Py_CLEAR(self->write);
    Py_CLEAR(self->va.lstate);
    Py_CLEAR(self->va.gstate);
    Py_CLEAR(self->renderer_type);
    Py_CLEAR(self->va.not_kept);
    Py_CLEAR(self->va.encode);
    Py_CLEAR(self->va.fallback);
    Py_CLEAR(self->calls);
    for (int i = 0; i < SEEN_SITES; i++) {
        Py_CLEAR(self->seen_event[i]);
        Py_CLEAR(self->seen_pieces[i]);
    }
    return 0;
}

static void
linestart_dealloc(LineStart *self)
{
    PyObject_GC_UnTrack(self);
    linestart_clear(self);
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
linestart_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    if (((LineStart *)self)->tracer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "LineStart was cleared");
        return NULL;
    }
    return PyVectorcall_Call(self, args, kwargs);
}

static PyObject *
linestart_get_calls(LineStart *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->calls != NULL ? self->calls : Py_None);
}

static int
linestart_set_calls(LineStart *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value != NULL && value != Py_None && !PyObject_TypeCheck(value, callline_type)) {
        PyErr_SetString(PyExc_TypeError, "LineStart.calls: a CallLine or None");
        return -1;
    }
    Py_XSETREF(self->calls, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static PyGetSetDef linestart_getset[] = {
    {"calls", (getter)linestart_get_calls, (setter)linestart_set_calls,
     "the CallLine whose forgotten states line starts reuse (recycle_state), or None", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef linestart_members[] = {
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(LineStart, vectorcall), Py_READONLY, NULL},
    {"stopped", Py_T_BOOL, offsetof(LineStart, stopped), 0,
     "the tracer writes nothing more (sealed, a fork's child, its size limit)"},
    {"multi", Py_T_BOOL, offsetof(LineStart, multi), 0, "lines name their thread"},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot linestart_slots[] = {
    {Py_tp_new, linestart_new},
    {Py_tp_dealloc, linestart_dealloc},
    {Py_tp_traverse, linestart_traverse},
    {Py_tp_clear, linestart_clear},
    {Py_tp_call, linestart_call},
    {Py_tp_members, linestart_members},
    {Py_tp_getset, linestart_getset},
    {Py_tp_doc, "LineStart(...): a ChainTracer's fast_call when it records values"},
    {0, NULL},
};

static PyType_Spec linestart_spec = {
    "blocktrace.tracers._cvalues.LineStart", sizeof(LineStart), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL, linestart_slots,
};

/* -- CallLine: call lines written by the stepper's C call hook ---------------
 *
 * CallLine(line, state) is ``line`` for the stepper's C call hook
 * (``Capabilities.call_lines``) of a ChainTracer recording locals: a call line
 * starts a new frame at its depth, so before it is written the locals kept for
 * that frame's (thread, depth) are forgotten, as ChainTracer._call does for a
 * call it writes itself.  ``vm`` (set by ChainTracer on its first call) gives
 * the thread; the depth is the line's own.  Return lines pass straight on. */

struct CallLine {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *line;
    PyObject *state;
    PyObject *vm; /* NULL until set */
    const bt_sink_api *line_api; /* line's C entry (a line writer's), or NULL */
    PyObject *line_sink;         /* line's self (line holds it) */
    /* by depth: the state forgotten by the last call line at that depth, when
     * nothing else held it, until a line start takes it (recycle_state) */
    PyObject *spare[SPARES];
    /* by depth: the slot cache of the locals' state there (LineStart's; dropped
     * before that state is forgotten) */
    slotcache *cache[SPARES];
    /* by depth: the state a call line there left in the states as a frame
     * gone's (see "frames gone, marked") */
    gone_mark gone[SPARES];
};

/* -- frames gone, marked ------------------------------------------------------
 *
 * Forgetting a frame's state by taking it out of the states (and a line
 * start putting the reused dict back) hashes the key (thread, depth) three
 * times a call, and each change of the watched states moves state_epoch on,
 * so every depth's slot cache must look its state up again.  So a call line
 * at a depth below SPARES leaves the state where it is and marks it, by
 * identity, as the frame gone's (gone[depth]: the state and its key): the
 * next line start at that depth that finds that very state for its key
 * reuses it in place as a spare (every member shown, as from {}) and unmarks
 * it once its pass succeeded, without the state's lookup when its slot cache
 * has it (changes).  A mark at a depth is for one key: a call of another
 * thread there settles the mark before (the state taken out as before).  Code
 * that reads the states otherwise -- ChainTracer's own path, in Python or
 * through line() -- calls settle() first, which takes every marked state out
 * of the states (and parks it as a spare). */

/* The mark at depth settled: its state taken out of the states when it is
 * still the entry for its key (parked as the spare when only ours), the mark
 * cleared.  0 or -1. */
static int
callline_settle_one(CallLine *self, long long depth)
{
    gone_mark *g = &self->gone[depth];
    PyObject *st = g->state, *key = g->key;
    if (st == NULL) {
        return 0;
    }
    g->state = g->key = NULL;
    slotcache_release(self->cache[depth]); /* (it may hold the state) */
    PyObject *now = PyDict_GetItemWithError(self->state, key); /* borrowed */
    int rc = now == NULL && PyErr_Occurred() ? -1 : 0;
    PyObject *popped = NULL;
    if (now == st) {
#if PY_VERSION_HEX >= 0x030D0000
        rc = PyDict_Pop(self->state, key, &popped);
#else
        popped = _PyDict_Pop(self->state, key, Py_None);
        rc = popped == NULL ? -1 : popped != Py_None;
#endif
    }
    Py_DECREF(st);
    Py_DECREF(key);
    if (rc > 0 && PyDict_CheckExact(popped) && Py_REFCNT(popped) == 1) {
        Py_XSETREF(self->spare[depth], popped); /* only ours: a line start's to reuse */
        popped = NULL;
    }
    Py_XDECREF(popped);
    return rc < 0 ? -1 : 0;
}

/* CallLine.settle(): every mark settled (before the states are read or
 * changed other than by LineStart) */
static PyObject *
callline_settle(PyObject *callable, PyObject *unused)
{
    (void)unused;
    CallLine *self = (CallLine *)callable;
    int rc = 0;
    for (long long d = 0; d < SPARES; d++) {
        if (callline_settle_one(self, d) < 0) {
            rc = -1;
        }
    }
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* Before a call line (body, n) is written: the locals kept for the frame it
 * starts, (vm.thread, its depth), are forgotten (below SPARES: marked as a
 * frame gone's).  0 or -1. */
static int
callline_forget(CallLine *self, const char *body, Py_ssize_t n)
{
    if (self->vm == NULL || PyDict_GET_SIZE(self->state) == 0) {
        return 0; /* (nothing kept: nothing to forget) */
    }
    long long depth = bt_call_depth(body, (size_t)n);
    if (depth < 0) {
        return 0;
    }
    PyObject *vdict = plain_dict(self->vm);
    if (vdict == NULL && PyErr_Occurred()) {
        return -1;
    }
    PyObject *thread = attr_hinted(self->vm, vdict, s_thread, &hint_thread);
    Py_XDECREF(vdict);
    PyObject *key = thread == NULL ? NULL : state_key(thread, NULL, depth);
    Py_XDECREF(thread);
    if (key == NULL) {
        return -1;
    }
    if (depth < SPARES) {
        gone_mark *g = &self->gone[depth];
        if (g->state != NULL && g->key != key && callline_settle_one(self, depth) < 0) {
            Py_DECREF(key);
            return -1;
        }
        /* the state kept for key: the one the depth's slot cache saw as its entry
         * when nothing changed the states since, else looked up */
        slotcache *c = self->cache[depth];
        PyObject *now = NULL; /* borrowed */
        if (c != NULL && c->state != NULL && c->states == self->state && c->states_key == key &&
            c->state_epoch == state_epoch) {
            now = c->state;
        }
        else if ((now = PyDict_GetItemWithError(self->state, key)) == NULL && PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        if (now == NULL || now == g->state) { /* nothing kept, or marked already */
            Py_DECREF(key);
            return 0;
        }
        if (PyDict_CheckExact(now)) {
            if (g->state != NULL) { /* (another state of key's: let go) */
                Py_CLEAR(g->state);
                Py_CLEAR(g->key);
            }
            g->state = Py_NewRef(now);
            g->key = key; /* (taken) */
            return 0;
        }
        slotcache_release(self->cache[depth]); /* (it holds the state) */
    }
    PyObject *gone = NULL;
#if PY_VERSION_HEX >= 0x030D0000
    int rc = PyDict_Pop(self->state, key, &gone);
#else
    gone = _PyDict_Pop(self->state, key, Py_None);
    int rc = gone == NULL ? -1 : gone != Py_None;
#endif
    Py_DECREF(key);
    if (rc > 0 && depth < SPARES && PyDict_CheckExact(gone) && Py_REFCNT(gone) == 1) {
        Py_XSETREF(self->spare[depth], gone); /* only ours: a line start's to reuse */
        gone = NULL;
    }
    Py_XDECREF(gone);
    return rc < 0 ? -1 : 0;
}

static gone_mark *
callline_gone(PyObject *calls, long long depth)
{
    return calls == NULL || depth < 0 || depth >= SPARES ? NULL : &((CallLine *)calls)->gone[depth];
}

static slotcache **
callline_cache(PyObject *calls, long long depth)
{
    return calls == NULL || depth < 0 || depth >= SPARES ? NULL
                                                         : &((CallLine *)calls)->cache[depth];
}

static PyObject **
callline_spare(PyObject *calls, long long depth)
{
    return calls == NULL || depth < 0 || depth >= SPARES ? NULL
                                                         : &((CallLine *)calls)->spare[depth];
}

/* The line goes on: to the writer's C entry when line is a line writer's */
static int
callline_on(CallLine *self, const char *body, size_t n, PyObject *bytes)
{
    if (self->line_api != NULL) {
        return self->line_api->line(self->line_sink, body, n);
    }
    PyObject *made = bytes == NULL ? PyBytes_FromStringAndSize(body, (Py_ssize_t)n) : NULL;
    PyObject *r = bytes != NULL || made != NULL ? PyObject_CallOneArg(self->line, bytes != NULL ? bytes : made)
                                                : NULL;
    Py_XDECREF(made);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static PyObject *
callline_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    CallLine *self = (CallLine *)callable;
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "CallLine takes one argument: a line body");
        return NULL;
    }
    if (self->line == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CallLine was cleared");
        return NULL;
    }
    PyObject *body = args[0];
    if (PyBytes_Check(body) &&
        callline_forget(self, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body)) < 0) {
        return NULL;
    }
    return PyObject_Vectorcall(self->line, args, 1, NULL);
}

/* CallLine.line(body): the same as calling it, as a line writer's ``line``
 * method (the stepper's call hook calls callline_api_line below instead) */
static PyObject *
callline_line_meth(PyObject *callable, PyObject *body)
{
    return callline_vectorcall(callable, &body, 1, NULL);
}

/* The sink entry: the call hook's line from its buffer, without a call */
static int
callline_api_line(PyObject *sink, const char *body, size_t n)
{
    CallLine *self = (CallLine *)sink;
    if (self->line == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CallLine was cleared");
        return -1;
    }
    if (callline_forget(self, body, (Py_ssize_t)n) < 0) {
        return -1;
    }
    return callline_on(self, body, n, NULL);
}

static const bt_sink_api callline_sink_api = {
    NULL, NULL, (PyCFunction)callline_line_meth, callline_api_line, NULL, NULL,
};

static PyObject *
callline_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *line, *state;
    if (!PyArg_ParseTuple(args, "OO!:CallLine", &line, &PyDict_Type, &state)) {
        return NULL;
    }
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "CallLine takes no keywords");
        return NULL;
    }
    CallLine *self = (CallLine *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = callline_vectorcall;
    self->line = Py_NewRef(line);
    self->state = Py_NewRef(state);
    self->vm = NULL;
    self->line_sink = NULL;
    self->line_api = bt_sink_of(line, 1, &self->line_sink);
    if (self->line_api != NULL && self->line_api->line == NULL) {
        self->line_api = NULL;
        self->line_sink = NULL;
    }
    return (PyObject *)self;
}

static PyObject *
callline_get_vm(CallLine *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->vm != NULL ? self->vm : Py_None);
}

static int
callline_set_vm(CallLine *self, PyObject *value, void *closure)
{
    (void)closure;
    Py_XSETREF(self->vm, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static int
callline_traverse(CallLine *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->line);
    Py_VISIT(self->state);
    Py_VISIT(self->vm);
    for (int i = 0; i < SPARES; i++) {
        Py_VISIT(self->spare[i]);
        Py_VISIT(self->gone[i].state);
        Py_VISIT(self->gone[i].key);
        if (self->cache[i] != NULL) {
            Py_VISIT(self->cache[i]->state);
            Py_VISIT(self->cache[i]->names);
        }
    }
    return 0;
}

static int
callline_clear(CallLine *self)
{
    self->line_api = NULL;
    self->line_sink = NULL;
    Py_CLEAR(self->line);
    Py_CLEAR(self->state);
    Py_CLEAR(self->vm);
    for (int i = 0; i < SPARES; i++) {
        Py_CLEAR(self->spare[i]);
        Py_CLEAR(self->gone[i].state);
        Py_CLEAR(self->gone[i].key);
        slotcache_drop(&self->cache[i]);
    }
    return 0;
}

static void
callline_dealloc(CallLine *self)
{
    PyObject_GC_UnTrack(self);
    callline_clear(self);
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
callline_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return PyVectorcall_Call(self, args, kwargs);
}

static PyGetSetDef callline_getset[] = {
    {"vm", (getter)callline_get_vm, (setter)callline_set_vm, "the stepper (its thread), or None", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef callline_methods[] = {
    {"line", callline_line_meth, METH_O,
     "line(body): as calling it (the stepper's call hook calls its C entry, _sink_api)"},
    {"settle", callline_settle, METH_NOARGS,
     "settle(): the states of frames gone that call lines marked taken out of the states"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef callline_members[] = {
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(CallLine, vectorcall), Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot callline_slots[] = {
    {Py_tp_new, callline_new},
    {Py_tp_dealloc, callline_dealloc},
    {Py_tp_traverse, callline_traverse},
    {Py_tp_clear, callline_clear},
    {Py_tp_call, callline_call},
    {Py_tp_getset, callline_getset},
    {Py_tp_methods, callline_methods},
    {Py_tp_members, callline_members},
    {Py_tp_doc, "CallLine(line, state): call lines' line(body), forgetting the new frame's locals"},
    {0, NULL},
};

static PyType_Spec callline_spec = {
    "blocktrace.tracers._cvalues.CallLine", sizeof(CallLine), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL, callline_slots,
};

/* frame_items(frame): the pairs a line start reads for frame's locals without
 * its f_locals, as a list of (name, value), or None where it reads f_locals
 * (not a function's frame, names set from outside, 3.12's cells, or neither
 * 3.12 nor 3.13): for the tests, which compare it with
 * list(frame.f_locals.items()) (3.12: the frame's dict brought up to date) */
static PyObject *
frame_items(PyObject *module, PyObject *frame)
{
    if (!PyFrame_Check(frame)) {
        PyErr_SetString(PyExc_TypeError, "frame_items takes a frame");
        return NULL;
    }
    int got = 0;
    snapshot snap;
    snap_init(&snap);
#ifdef DIRECT_LOCALS
    got = snap_frame(&snap, ((PyFrameObject *)frame)->f_frame, NULL, NULL, NULL);
#endif
    PyObject *out = got < 0 ? NULL : got == 0 ? Py_NewRef(Py_None) : PyList_New(snap.n);
    for (Py_ssize_t i = 0; got > 0 && out != NULL && i < snap.n; i++) {
        PyObject *pair = PyTuple_Pack(2, snap.items[2 * i], snap.items[2 * i + 1]);
        if (pair == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    snap_free(&snap);
    return out;
}

static PyMethodDef methods[] = {
    {"frame_items", frame_items, METH_O,
     "frame_items(frame) -> [(name, value)] read from the frame, or None (f_locals is read)"},
    {"line", (PyCFunction)(void (*)(void))line, METH_FASTCALL,
     "line(code, prefix, suffix, gas, depth, thread, locals_state, locals_mode, globals_state,\n"
     "     globals_mode, renderer, not_kept, encode, fallback) -> a line start's op line body"},
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(names, prev, renderer, changes, not_kept, encode) -> (fresh, object) or None"},
    {"frame_of", frame_of, METH_O, "frame_of(code) -> the innermost frame running code, or None"},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &callline_spec, NULL);
    if (type == NULL || PyModule_AddObjectRef(module, "CallLine", type) < 0) {
        Py_XDECREF(type);
        return -1;
    }
    callline_type = (PyTypeObject *)type; /* the module holds it */
    PyObject *sink = PyCapsule_New((void *)&callline_sink_api, BT_SINK_CAPSULE, NULL);
    int sink_set = sink == NULL ? -1 : PyObject_SetAttrString(type, "_sink_api", sink);
    Py_XDECREF(sink);
    Py_DECREF(type);
    if (sink_set < 0) {
        return -1;
    }
    type = PyType_FromModuleAndSpec(module, &linestart_spec, NULL);
    if (type == NULL || PyModule_AddObjectRef(module, "LineStart", type) < 0) {
        Py_XDECREF(type);
        return -1;
    }
    PyObject *capsule = PyCapsule_New((void *)&linestart_api_table, BT_LINE_START_CAPSULE, NULL);
    int set = capsule == NULL ? -1 : PyObject_SetAttrString(type, "_line_start_api", capsule);
    Py_XDECREF(capsule);
    if (set < 0) {
        Py_DECREF(type);
        return -1;
    }
    Py_DECREF(type);
    if (s_render == NULL) {
        s_thread = PyUnicode_InternFromString("thread");
        s_renderer = PyUnicode_InternFromString("renderer");
        s_gas = PyUnicode_InternFromString("gas");
        s_depth = PyUnicode_InternFromString("depth");
        empty_prev = PyDict_New();
        s_render = PyUnicode_InternFromString("render");
        s_numbers = PyUnicode_InternFromString("_numbers");
        s_limits = PyUnicode_InternFromString("_limits");
        s_object_number = PyUnicode_InternFromString("object_number");
        s_deaths = PyUnicode_InternFromString("_deaths");
        s_shared = PyUnicode_InternFromString("_shared");
#ifdef SLOT_CACHE
        state_watcher = PyDict_AddWatcher(state_watched);
        if (state_watcher < 0) {
            PyErr_Clear(); /* (all taken) the states are looked up */
        }
#endif
        if (empty_prev == NULL || s_thread == NULL ||
            s_renderer == NULL || s_gas == NULL || s_depth == NULL || s_render == NULL || s_numbers == NULL ||
            s_limits == NULL || s_object_number == NULL || s_deaths == NULL ||
            s_shared == NULL) {
            return -1;
        }
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "blocktrace.tracers._cvalues",
    "A line start's values in C (the reference: tracers/chain.py, tracers/render.py).", 0,
    methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__cvalues(void)
{
    return PyModuleDef_Init(&module_def);
}

/* TablesPass: the viewer's tables (blocktrace/view/tables.py) in one native pass.
 *
 * The state of the table pass -- step counting, hit counts, the call table, the
 * scopes' recorded values and their change steps, the postings -- lives here.
 * feed() reads the lines the writer writes in its usual shape (plain op lines,
 * op lines with simple recorded values, call lines of a code already seen,
 * return lines) straight from a buffer of whole lines, and stops before any
 * other line: Python decodes that one with the format's Structs and hands what
 * it read to op()/call()/ret()/other().  So every table is what the reference
 * pass (tables.build_tables_reference) computes; this only reads the common
 * lines sooner.  The lines are read by the format's C reader
 * (format/csrc/linereader.h): a line is taken here only when it reads it (one
 * the format's Structs decode) and the tables can hold it, else Python decides.
 *
 * A recorded value is compared by its JSON text as written (as the reference
 * compares msgspec.Raw), so 1 -> true -> 1.0 are three changes. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linereader.h"
#include "pyutil.h"

#define NAME_SHIFT 40
#define NO_LINE INT64_MIN
#define NO_THREAD INT64_MIN /* a line without a thread member (thread 1's) */

/* ---- growable buffers ----------------------------------------------------- */

typedef struct {
    int64_t *p;
    size_t n, cap;
} vec64;

static int
vec_push(vec64 *v, int64_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        int64_t *more = PyMem_RawRealloc(v->p, cap * sizeof *more);
        if (more == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        v->p = more;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return 0;
}

static void
vec_free(vec64 *v)
{
    PyMem_RawFree(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
}

typedef struct {
    char *p;
    size_t n, cap;
} bytebuf;

static int
buf_put(bytebuf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) {
            cap *= 2;
        }
        char *more = PyMem_RawRealloc(b->p, cap);
        if (more == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = more;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

static void
buf_free(bytebuf *b)
{
    PyMem_RawFree(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- an insertion-ordered map of (int64, int64) keys ------------------------ */

typedef struct {
    int64_t *k1, *k2, *val;  /* entries, in insertion order */
    size_t n, cap;
    int64_t *slots;           /* open addressing: entry index + 1, 0 = empty */
    size_t nslots;
} map2;

static uint64_t
mix(uint64_t a, uint64_t b)
{
    uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL + (a << 6) + (a >> 2));
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return h;
}

static void
map_free(map2 *m)
{
    PyMem_RawFree(m->k1);
    PyMem_RawFree(m->k2);
    PyMem_RawFree(m->val);
    PyMem_RawFree(m->slots);
    memset(m, 0, sizeof *m);
}

/* index of (a, b), or -1 */
static int64_t
map_find(const map2 *m, int64_t a, int64_t b)
{
    if (m->nslots == 0) {
        return -1;
    }
    size_t mask = m->nslots - 1;
    for (size_t i = mix((uint64_t)a, (uint64_t)b) & mask;; i = (i + 1) & mask) {
        int64_t s = m->slots[i];
        if (s == 0) {
            return -1;
        }
        if (m->k1[s - 1] == a && m->k2[s - 1] == b) {
            return s - 1;
        }
    }
}

static int
map_rehash(map2 *m, size_t nslots)
{
    int64_t *slots = PyMem_RawCalloc(nslots, sizeof *slots);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = nslots - 1;
    for (size_t e = 0; e < m->n; e++) {
        size_t i = mix((uint64_t)m->k1[e], (uint64_t)m->k2[e]) & mask;
        while (slots[i]) {
            i = (i + 1) & mask;
        }
        slots[i] = (int64_t)e + 1;
    }
    PyMem_RawFree(m->slots);
    m->slots = slots;
    m->nslots = nslots;
    return 0;
}

/* index of (a, b), added with val when new (*added = 1); -1 on no memory */
static int64_t
map_add(map2 *m, int64_t a, int64_t b, int64_t val, int *added)
{
    int64_t at = map_find(m, a, b);
    if (added) {
        *added = at < 0;
    }
    if (at >= 0) {
        return at;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        int64_t *k1 = PyMem_RawRealloc(m->k1, cap * sizeof *k1);
        if (k1) {
            m->k1 = k1;
        }
        int64_t *k2 = k1 ? PyMem_RawRealloc(m->k2, cap * sizeof *k2) : NULL;
        if (k2) {
            m->k2 = k2;
        }
        int64_t *v = k2 ? PyMem_RawRealloc(m->val, cap * sizeof *v) : NULL;
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        m->val = v;
        m->cap = cap;
    }
    if ((m->n + 1) * 2 > m->nslots && map_rehash(m, m->nslots ? m->nslots * 2 : 32) < 0) {
        return -1;
    }
    size_t e = m->n++;
    m->k1[e] = a;
    m->k2[e] = b;
    m->val[e] = val;
    size_t mask = m->nslots - 1;
    size_t i = mix((uint64_t)a, (uint64_t)b) & mask;
    while (m->slots[i]) {
        i = (i + 1) & mask;
    }
    m->slots[i] = (int64_t)e + 1;
    return (int64_t)e;
}

/* ---- scopes: a name's last recorded value, the steps where values changed ---- */

typedef struct {
    int64_t nid;   /* -1: empty slot */
    char *text;
    size_t len, cap;
} slot_t;

typedef struct {
    slot_t *slots;
    size_t nslots, used;
    vec64 changes;  /* nid << NAME_SHIFT | step */
} scope_t;

static void
scope_clear(scope_t *s)
{
    for (size_t i = 0; i < s->nslots; i++) {
        PyMem_RawFree(s->slots[i].text);
    }
    PyMem_RawFree(s->slots);
    vec_free(&s->changes);
    memset(s, 0, sizeof *s);
}

static slot_t *
scope_slot(scope_t *s, int64_t nid)
{
    if ((s->used + 1) * 2 > s->nslots) {
        size_t n = s->nslots ? s->nslots * 2 : 8;
        slot_t *slots = PyMem_RawCalloc(n, sizeof *slots);
        if (slots == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            slots[i].nid = -1;
        }
        for (size_t i = 0; i < s->nslots; i++) {
            if (s->slots[i].nid >= 0) {
                size_t j = mix((uint64_t)s->slots[i].nid, 0) & (n - 1);
                while (slots[j].nid >= 0) {
                    j = (j + 1) & (n - 1);
                }
                slots[j] = s->slots[i];
            }
        }
        PyMem_RawFree(s->slots);
        s->slots = slots;
        s->nslots = n;
    }
    size_t mask = s->nslots - 1;
    size_t i = mix((uint64_t)nid, 0) & mask;
    while (s->slots[i].nid >= 0 && s->slots[i].nid != nid) {
        i = (i + 1) & mask;
    }
    return &s->slots[i];
}

/* ---- the pass ------------------------------------------------------------- */

typedef struct {
    int64_t call;   /* index in the call table */
    scope_t scope;
} frame_t;

typedef struct {
    frame_t *p;
    size_t n, cap;
} stack_t_;

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_line;
    int events;      /* a call-level trace: calls and returns are steps too */
    int64_t steps;
    /* the step before: where (pc, depth, code, thread or -1) and its gas */
    int have_last;
    int64_t w_pc, w_depth, w_code, w_thread;
    bytebuf last_gas;
    /* the frame line counted last (tid, depth, code, lineno) */
    int have_frame_line;
    int64_t f_tid, f_depth, f_code, f_line;
    int has_values;
    map2 threads;    /* thread number -> tid (the entry index) */
    map2 last_line;  /* (tid, depth) -> entry; code/lineno in line_code/line_no */
    vec64 line_code, line_no;
    map2 hits;       /* (code, lineno) -> count */
    map2 codes;      /* code -> file id (registered by Python) */
    map2 code_calls; /* code -> index in calls_of */
    vec64 *calls_of;
    size_t ncalls_of, calls_of_cap;
    /* names: bytes -> nid, with its postings */
    bytebuf names;   /* the names' bytes, one after another */
    vec64 name_off, name_len;
    map2 name_map;   /* (hash, length) -> first nid with that hash; chain in name_next */
    vec64 name_next;
    vec64 *postings;
    size_t postings_cap;
    /* the call table */
    vec64 c_start, c_end, c_depth, c_code, c_thread, c_parent, c_vat, c_vcount;
    /* per tid a stack of frames; stack_order: tids in order of their first call */
    stack_t_ *stacks;
    size_t nstacks;
    vec64 stack_order;
    map2 module_scopes;  /* file id -> index in mscopes */
    scope_t *mscopes;
    size_t nmscopes, mscopes_cap;
    vec64 exceptions;
    bytebuf steps_out;   /* step records, taken by Python */
    vec64 values_out;    /* values.bin, taken by Python */
    int64_t values_written;
    int finished;
} PassObject;

static int
tid_of(PassObject *s, int64_t thread_raw, int add, int64_t *tid)
{
    int64_t thread = thread_raw == NO_THREAD ? 1 : thread_raw;
    if (!add) {
        int64_t at = map_find(&s->threads, thread, 0);
        *tid = at < 0 ? 0 : at;
        return 0;
    }
    int64_t at = map_add(&s->threads, thread, 0, 0, NULL);
    if (at < 0) {
        return -1;
    }
    *tid = at;
    return 0;
}

static int
count_hit(PassObject *s, int64_t tid, int64_t depth, int64_t code, int64_t lineno)
{
    int added;
    int64_t at = map_add(&s->last_line, tid, depth, 0, &added);
    if (at < 0) {
        return -1;
    }
    if (added && (vec_push(&s->line_code, 0) < 0 || vec_push(&s->line_no, NO_LINE) < 0)) {
        return -1;
    }
    if ((s->line_no.p[at] == lineno && s->line_code.p[at] == code) || lineno <= 0) {
        return 0;
    }
    s->line_code.p[at] = code;
    s->line_no.p[at] = lineno;
    int64_t h = map_add(&s->hits, code, lineno, 0, NULL);
    if (h < 0) {
        return -1;
    }
    s->hits.val[h]++;
    return 0;
}

static int
put_step(PassObject *s, int64_t number, int64_t code, int64_t lineno, int64_t depth,
         int64_t tid)
{
    uint8_t rec[16];
    uint32_t a = (uint32_t)number, b = (uint32_t)code, c = (uint32_t)lineno;
    uint16_t d = depth > 0xFFFF ? 0xFFFF : (uint16_t)depth;
    uint16_t e = tid > 0xFFFF ? 0xFFFF : (uint16_t)tid;
    memcpy(rec, &a, 4);
    memcpy(rec + 4, &b, 4);
    memcpy(rec + 8, &c, 4);
    memcpy(rec + 12, &d, 2);
    memcpy(rec + 14, &e, 2);
    return buf_put(&s->steps_out, rec, 16);
}

/* An op (or exception) line: the step it is on (a new one, or the one before when
 * it is the same instruction again), or -1 with an exception set. */
static int64_t
op_step(PassObject *s, int64_t number, int64_t pc, int64_t depth, int64_t code,
        int64_t lineno, int64_t thread_raw, const char *gas, size_t gas_len, int exception,
        int64_t *tid_out)
{
    int64_t tid;
    if (depth < 0 || tid_of(s, thread_raw, 1, &tid) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_OverflowError, "depth out of the step record's range");
        }
        return -1;
    }
    *tid_out = tid;
    int same = s->have_last && s->w_pc == pc && s->w_depth == depth && s->w_code == code
               && s->w_thread == thread_raw;
    int64_t at;
    if (same && (exception || (s->last_gas.n == gas_len
                               && memcmp(s->last_gas.p, gas, gas_len) == 0))) {
        at = s->steps - 1;  /* it belongs to the step before, as diff merges lines */
    } else {
        at = s->steps++;
        s->have_last = 1;
        s->w_pc = pc;
        s->w_depth = depth;
        s->w_code = code;
        s->w_thread = thread_raw;
        s->last_gas.n = 0;
        if (buf_put(&s->last_gas, gas, gas_len) < 0) {
            return -1;
        }
        if (!(s->have_frame_line && s->f_tid == tid && s->f_depth == depth && s->f_code == code
              && s->f_line == lineno)) {
            s->have_frame_line = 1;
            s->f_tid = tid;
            s->f_depth = depth;
            s->f_code = code;
            s->f_line = lineno;
            if (count_hit(s, tid, depth, code, lineno) < 0) {
                return -1;
            }
        }
        if (put_step(s, number, code, lineno, depth, tid) < 0) {
            return -1;
        }
    }
    if (exception && (s->exceptions.n == 0 || s->exceptions.p[s->exceptions.n - 1] != at)) {
        if (vec_push(&s->exceptions, at) < 0) {
            return -1;
        }
    }
    return at;
}

static uint64_t
hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    }
    return h;
}

static int64_t
name_id(PassObject *s, const char *p, size_t n)
{
    int64_t h = (int64_t)hash_bytes(p, n);
    int64_t at = map_find(&s->name_map, h, (int64_t)n);
    int64_t nid = at < 0 ? -1 : s->name_map.val[at];
    while (nid >= 0) {
        if (memcmp(s->names.p + s->name_off.p[nid], p, n) == 0) {
            return nid;
        }
        nid = s->name_next.p[nid];
    }
    nid = (int64_t)s->name_off.n;
    int64_t head = -1;
    if (at < 0) {
        if (map_add(&s->name_map, h, (int64_t)n, nid, NULL) < 0) {
            return -1;
        }
    } else {
        head = s->name_map.val[at];
        s->name_map.val[at] = nid;
    }
    if (vec_push(&s->name_off, (int64_t)s->names.n) < 0 || vec_push(&s->name_len, (int64_t)n) < 0
        || vec_push(&s->name_next, head) < 0 || buf_put(&s->names, p, n) < 0) {
        return -1;
    }
    if ((size_t)nid >= s->postings_cap) {
        size_t cap = s->postings_cap ? s->postings_cap * 2 : 64;
        vec64 *more = PyMem_RawRealloc(s->postings, cap * sizeof *more);
        if (more == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(more + s->postings_cap, 0, (cap - s->postings_cap) * sizeof *more);
        s->postings = more;
        s->postings_cap = cap;
    }
    return nid;
}

/* One member recorded in a scope at step `at`. */
static int
record(PassObject *s, scope_t *scope, const char *name, size_t name_len, const char *text,
       size_t len, int64_t at)
{
    int64_t nid = name_id(s, name, name_len);
    if (nid < 0) {
        return -1;
    }
    slot_t *slot = scope_slot(scope, nid);
    if (slot == NULL) {
        return -1;
    }
    if (slot->nid == nid && slot->len == len && memcmp(slot->text, text, len) == 0) {
        return 0;
    }
    if (slot->nid != nid) {
        slot->nid = nid;
        scope->used++;
    }
    if (len > slot->cap) {
        char *more = PyMem_RawRealloc(slot->text, len);
        if (more == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        slot->text = more;
        slot->cap = len;
    }
    memcpy(slot->text, text, len);
    slot->len = len;
    if (vec_push(&scope->changes, (nid << NAME_SHIFT) | at) < 0) {
        return -1;
    }
    vec64 *post = &s->postings[nid];
    if (post->n == 0 || post->p[post->n - 1] != at) {
        return vec_push(post, at);
    }
    return 0;
}

static scope_t *
locals_scope(PassObject *s, int64_t tid)
{
    if ((size_t)tid < s->nstacks && s->stacks[tid].n) {
        return &s->stacks[tid].p[s->stacks[tid].n - 1].scope;
    }
    return NULL;
}

static scope_t *
module_scope(PassObject *s, int64_t file_id)
{
    int added;
    int64_t at = map_add(&s->module_scopes, file_id, 0, 0, &added);
    if (at < 0) {
        return NULL;
    }
    if (added) {
        if (s->nmscopes == s->mscopes_cap) {
            size_t cap = s->mscopes_cap ? s->mscopes_cap * 2 : 8;
            scope_t *more = PyMem_RawRealloc(s->mscopes, cap * sizeof *more);
            if (more == NULL) {
                PyErr_NoMemory();
                return NULL;
            }
            s->mscopes = more;
            s->mscopes_cap = cap;
        }
        memset(&s->mscopes[s->nmscopes++], 0, sizeof(scope_t));
    }
    return &s->mscopes[at];
}

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* a scope's changes, sorted, onto values.bin: (offset, count) */
static int
flush_scope(PassObject *s, scope_t *scope, int64_t *offset, int64_t *count)
{
    qsort(scope->changes.p, scope->changes.n, sizeof(int64_t), cmp64);
    *offset = s->values_written;
    *count = (int64_t)scope->changes.n;
    for (size_t i = 0; i < scope->changes.n; i++) {
        if (vec_push(&s->values_out, scope->changes.p[i]) < 0) {
            return -1;
        }
    }
    s->values_written += (int64_t)scope->changes.n;
    return 0;
}

static int
close_call(PassObject *s, int64_t tid)
{
    stack_t_ *st = &s->stacks[tid];
    frame_t *f = &st->p[--st->n];
    s->c_end.p[f->call] = s->steps - 1;
    int rc = 0;
    if (f->scope.changes.n) {
        rc = flush_scope(s, &f->scope, &s->c_vat.p[f->call], &s->c_vcount.p[f->call]);
    }
    scope_clear(&f->scope);
    return rc;
}

static int
do_call(PassObject *s, int64_t number, int64_t thread_raw, int64_t depth, int64_t code,
        int64_t first_line)
{
    int64_t tid;
    if (depth < 0 || depth > 0xFFFFFFFFLL || code < 0 || code > 0xFFFFFFFFLL) {
        PyErr_SetString(PyExc_OverflowError, "depth or code out of the call table's range");
        return -1;
    }
    if (tid_of(s, thread_raw, 1, &tid) < 0) {
        return -1;
    }
    s->have_frame_line = 0;
    if ((size_t)tid >= s->nstacks) {
        size_t n = (size_t)tid + 1;
        stack_t_ *more = PyMem_RawRealloc(s->stacks, n * sizeof *more);
        if (more == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(more + s->nstacks, 0, (n - s->nstacks) * sizeof *more);
        s->stacks = more;
        s->nstacks = n;
    }
    stack_t_ *st = &s->stacks[tid];
    int first = st->p == NULL;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        frame_t *more = PyMem_RawRealloc(st->p, cap * sizeof *more);
        if (more == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        st->p = more;
        st->cap = cap;
    }
    if (first && vec_push(&s->stack_order, tid) < 0) {
        return -1;
    }
    int64_t parent = st->n ? st->p[st->n - 1].call : -1;
    int64_t index = (int64_t)s->c_start.n;
    if (vec_push(&s->c_start, s->steps) < 0 || vec_push(&s->c_end, s->steps) < 0
        || vec_push(&s->c_depth, depth) < 0 || vec_push(&s->c_code, code) < 0
        || vec_push(&s->c_thread, tid) < 0 || vec_push(&s->c_parent, parent) < 0
        || vec_push(&s->c_vat, -1) < 0 || vec_push(&s->c_vcount, 0) < 0) {
        return -1;
    }
    int added;
    int64_t at = map_add(&s->code_calls, code, 0, (int64_t)s->ncalls_of, &added);
    if (at < 0) {
        return -1;
    }
    if (added) {
        if (s->ncalls_of == s->calls_of_cap) {
            size_t cap = s->calls_of_cap ? s->calls_of_cap * 2 : 16;
            vec64 *more = PyMem_RawRealloc(s->calls_of, cap * sizeof *more);
            if (more == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            s->calls_of = more;
            s->calls_of_cap = cap;
        }
        memset(&s->calls_of[s->ncalls_of++], 0, sizeof(vec64));
    }
    if (vec_push(&s->calls_of[s->code_calls.val[at]], s->steps) < 0) {
        return -1;
    }
    frame_t *f = &st->p[st->n++];
    f->call = index;
    memset(&f->scope, 0, sizeof f->scope);
    int64_t ll = map_find(&s->last_line, tid, depth);
    if (ll >= 0) {
        s->line_no.p[ll] = NO_LINE;  /* popped: the next line of this depth is a hit */
    }
    if (s->events) {  /* the call is a step, on the function's first line */
        s->have_last = 0;
        s->steps++;
        if (count_hit(s, tid, depth, code, first_line) < 0
            || put_step(s, number, code, first_line, depth, tid) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
do_return(PassObject *s, int64_t number, int64_t thread_raw, int64_t depth, int64_t code)
{
    int64_t tid;
    tid_of(s, thread_raw, 0, &tid);
    s->have_frame_line = 0;
    if (s->events) {  /* the return is a step, the last of its frame */
        if (depth < 0) {
            PyErr_SetString(PyExc_OverflowError, "depth out of the step record's range");
            return -1;
        }
        s->have_last = 0;
        s->steps++;
        if (put_step(s, number, code, 0, depth, tid) < 0) {
            return -1;
        }
    }
    if ((size_t)tid < s->nstacks && s->stacks[tid].n) {
        return close_call(s, tid);
    }
    return 0;
}

/* ---- reading the writer's lines -------------------------------------------- */

/* The layouts are the format's (format/csrc/linereader.h): a line it reads is one
 * the Structs decode; here only what the tables cannot hold goes to Python. */

/* 1 taken, 0 for Python, -1 error set */
static int
op_line(PassObject *s, bt_cp p, bt_cp end, int64_t number)
{
    BtOpLine o;
    BtMember loc[BT_MAX_MEMBERS], glob[BT_MAX_MEMBERS];
    if (bt_op_line(p, end, &o, loc, glob) < 0) {
        return 0;
    }
    int64_t file_id = 0;
    if (o.nglobals >= 0) {
        int64_t at = map_find(&s->codes, o.code, 0);
        if (at < 0) {
            return 0;  /* a code no call line named: Python knows its (empty) file */
        }
        file_id = s->codes.val[at];
    }
    int64_t tid;
    int64_t at = op_step(s, number, o.pc, o.depth, o.code, o.line,
                         o.has_thread ? o.thread : NO_THREAD, (const char *)o.gas_text,
                         o.gas_len, 0, &tid);
    if (at < 0) {
        return -1;
    }
    if (o.nlocals >= 0) {
        s->has_values = 1;
        scope_t *scope = locals_scope(s, tid);
        for (int i = 0; scope && i < o.nlocals; i++) {
            if (record(s, scope, (const char *)loc[i].name, loc[i].name_len,
                       (const char *)loc[i].text, loc[i].len, at) < 0) {
                return -1;
            }
        }
    }
    if (o.nglobals >= 0) {
        s->has_values = 1;
        scope_t *scope = module_scope(s, file_id);
        if (scope == NULL) {
            return -1;
        }
        for (int i = 0; i < o.nglobals; i++) {
            if (record(s, scope, (const char *)glob[i].name, glob[i].name_len,
                       (const char *)glob[i].text, glob[i].len, at) < 0) {
                return -1;
            }
        }
    }
    return 1;
}

static int
call_line(PassObject *s, bt_cp p, bt_cp end, int64_t number)
{
    BtCallLine c;
    if (bt_call_line(p, end, &c) < 0 || c.depth > 0xFFFFFFFFLL || c.code > 0xFFFFFFFFLL
        || map_find(&s->codes, c.code, 0) < 0) {
        return 0;
    }
    return do_call(s, number, c.has_thread ? c.thread : NO_THREAD, c.depth, c.code,
                   c.first_line) < 0 ? -1 : 1;
}

static int
return_line(PassObject *s, bt_cp p, bt_cp end, int64_t number)
{
    BtReturnLine r;
    if (bt_return_line(p, end, &r) < 0) {
        return 0;
    }
    return do_return(s, number, r.has_thread ? r.thread : NO_THREAD, r.depth, r.code) < 0 ? -1
                                                                                          : 1;
}

static PyObject *
Pass_feed(PassObject *s, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    long long number;
    if (!PyArg_ParseTuple(args, "y*nL", &view, &pos, &number)) {
        return NULL;
    }
    bt_cp base = view.buf;
    Py_ssize_t len = view.len;
    int stop = 0;
    if (pos < 0 || pos > len) {
        return bt_release_raise(&view, PyExc_ValueError, "position outside the buffer");
    }
    while (pos < len) {
        bt_cp line = base + pos;
        bt_cp nl = memchr(line, '\n', (size_t)(len - pos));
        if (nl == NULL) {
            break;
        }
        int r = 0;
        if (number > 1 && nl - line < s->max_line && line[0] == '{') {
            if (line[1] == '"' && line[2] == 'p') {
                r = op_line(s, line, nl, number);
            } else if (nl - line > 16 && memcmp(line, LINE_CALL_PREFIX, LINE_CALL_PREFIX_LEN) == 0) {
                r = call_line(s, line, nl, number);
            } else if (nl - line > 18
                       && memcmp(line, LINE_RETURN_PREFIX, LINE_RETURN_PREFIX_LEN) == 0) {
                r = return_line(s, line, nl, number);
            }
        }
        if (r < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
        if (r == 0) {
            stop = 1;
            break;
        }
        pos = nl + 1 - base;
        number++;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(inL)", stop, pos, number);
}

/* members from Python: a list of (name bytes, JSON text bytes) */
static int
record_list(PassObject *s, scope_t *scope, PyObject *list, int64_t at)
{
    Py_ssize_t n = PyList_GET_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        char *name, *text;
        Py_ssize_t name_len, len;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2
            || PyBytes_AsStringAndSize(PyTuple_GET_ITEM(item, 0), &name, &name_len) < 0
            || PyBytes_AsStringAndSize(PyTuple_GET_ITEM(item, 1), &text, &len) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "members are (name, text) bytes pairs");
            }
            return -1;
        }
        if (scope && record(s, scope, name, (size_t)name_len, text, (size_t)len, at) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
Pass_op(PassObject *s, PyObject *args)
{
    long long number, pc, depth, code, lineno, thread, file_id;
    const char *gas;
    Py_ssize_t gas_len;
    int exception;
    PyObject *loc, *glob;
    if (!PyArg_ParseTuple(args, "LLLLLLy#pOOL", &number, &pc, &depth, &code, &lineno, &thread,
                          &gas, &gas_len, &exception, &loc, &glob, &file_id)) {
        return NULL;
    }
    if ((loc != Py_None && !PyList_Check(loc)) || (glob != Py_None && !PyList_Check(glob))) {
        PyErr_SetString(PyExc_TypeError, "locals and globals are lists or None");
        return NULL;
    }
    int64_t tid;
    int64_t at = op_step(s, number, pc, depth, code, lineno, thread, gas, (size_t)gas_len,
                         exception, &tid);
    if (at < 0) {
        return NULL;
    }
    if (loc != Py_None) {
        s->has_values = 1;
        if (record_list(s, locals_scope(s, tid), loc, at) < 0) {
            return NULL;
        }
    }
    if (glob != Py_None) {
        s->has_values = 1;
        scope_t *scope = module_scope(s, file_id);
        if (scope == NULL || record_list(s, scope, glob, at) < 0) {
            return NULL;
        }
    }
    return PyLong_FromLongLong(at);
}

static PyObject *
Pass_code(PassObject *s, PyObject *args)
{
    long long code, file_id;
    if (!PyArg_ParseTuple(args, "LL", &code, &file_id)) {
        return NULL;
    }
    if (map_add(&s->codes, code, 0, file_id, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Pass_call(PassObject *s, PyObject *args)
{
    long long number, thread, depth, code, first_line;
    if (!PyArg_ParseTuple(args, "LLLLL", &number, &thread, &depth, &code, &first_line)) {
        return NULL;
    }
    if (do_call(s, number, thread, depth, code, first_line) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Pass_ret(PassObject *s, PyObject *args)
{
    long long number, thread, depth, code;
    if (!PyArg_ParseTuple(args, "LLLL", &number, &thread, &depth, &code)) {
        return NULL;
    }
    if (do_return(s, number, thread, depth, code) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Pass_other(PassObject *s, PyObject *unused)
{
    s->have_frame_line = 0;
    Py_RETURN_NONE;
}

static PyObject *
take(bytebuf *b)
{
    PyObject *out = PyBytes_FromStringAndSize(b->p, (Py_ssize_t)b->n);
    b->n = 0;
    return out;
}

static PyObject *
take64(vec64 *v)
{
    PyObject *out = PyBytes_FromStringAndSize((const char *)v->p, (Py_ssize_t)(v->n * 8));
    v->n = 0;
    return out;
}

static PyObject *
Pass_take(PassObject *s, PyObject *unused)
{
    PyObject *steps = take(&s->steps_out);
    PyObject *values = steps ? take64(&s->values_out) : NULL;
    if (values == NULL) {
        Py_XDECREF(steps);
        return NULL;
    }
    return Py_BuildValue("(NN)", steps, values);
}

/* Close every open frame (each thread's stack in order of its first call, then the
 * module scopes); afterwards take() has the rest of values.bin. */
static PyObject *
Pass_finish(PassObject *s, PyObject *unused)
{
    if (s->finished) {
        PyErr_SetString(PyExc_RuntimeError, "finished already");
        return NULL;
    }
    s->finished = 1;
    for (size_t i = 0; i < s->stack_order.n; i++) {
        int64_t tid = s->stack_order.p[i];
        while (s->stacks[tid].n) {
            if (close_call(s, tid) < 0) {
                return NULL;
            }
        }
    }
    PyObject *globals_blocks = PyList_New(0);
    if (globals_blocks == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < s->nmscopes; i++) {
        scope_t *scope = &s->mscopes[i];
        if (scope->changes.n) {
            int64_t offset, count;
            if (flush_scope(s, scope, &offset, &count) < 0) {
                Py_DECREF(globals_blocks);
                return NULL;
            }
            PyObject *item = Py_BuildValue("(LLL)", (long long)s->module_scopes.k1[i],
                                           (long long)offset, (long long)count);
            if (item == NULL || PyList_Append(globals_blocks, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(globals_blocks);
                return NULL;
            }
            Py_DECREF(item);
        }
    }
    return globals_blocks;
}

static PyObject *
bytes64(const vec64 *v)
{
    return PyBytes_FromStringAndSize((const char *)v->p, (Py_ssize_t)(v->n * 8));
}

/* The tables besides the step records and values.bin, as Python objects:
 * (steps, calls {name: int64 bytes}, hits [(code, line, count)], names [bytes],
 *  postings [int64 bytes], code_calls [(code, int64 bytes)], exceptions int64 bytes,
 *  threads [number], has_values) */
static PyObject *
Pass_result(PassObject *s, PyObject *unused)
{
    PyObject *calls = Py_BuildValue(
        "{sNsNsNsNsNsNsNsN}", "start", bytes64(&s->c_start), "end", bytes64(&s->c_end),
        "depth", bytes64(&s->c_depth), "code", bytes64(&s->c_code), "thread",
        bytes64(&s->c_thread), "parent", bytes64(&s->c_parent), "values_at", bytes64(&s->c_vat),
        "values_count", bytes64(&s->c_vcount));
    PyObject *hits = PyList_New((Py_ssize_t)s->hits.n);
    PyObject *names = PyList_New((Py_ssize_t)s->name_off.n);
    PyObject *postings = PyList_New((Py_ssize_t)s->name_off.n);
    PyObject *code_calls = PyList_New((Py_ssize_t)s->code_calls.n);
    PyObject *threads = PyList_New((Py_ssize_t)s->threads.n);
    PyObject *out = NULL;
    if (!calls || !hits || !names || !postings || !code_calls || !threads) {
        goto done;
    }
    for (size_t i = 0; i < s->hits.n; i++) {
        PyObject *item = Py_BuildValue("(LLL)", (long long)s->hits.k1[i],
                                       (long long)s->hits.k2[i], (long long)s->hits.val[i]);
        if (item == NULL) {
            goto done;
        }
        PyList_SET_ITEM(hits, (Py_ssize_t)i, item);
    }
    for (size_t i = 0; i < s->name_off.n; i++) {
        PyObject *name = PyBytes_FromStringAndSize(s->names.p + s->name_off.p[i],
                                                   (Py_ssize_t)s->name_len.p[i]);
        PyObject *post = bytes64(&s->postings[i]);
        if (name == NULL || post == NULL) {
            Py_XDECREF(name);
            Py_XDECREF(post);
            goto done;
        }
        PyList_SET_ITEM(names, (Py_ssize_t)i, name);
        PyList_SET_ITEM(postings, (Py_ssize_t)i, post);
    }
    for (size_t i = 0; i < s->code_calls.n; i++) {
        PyObject *item = Py_BuildValue("(LN)", (long long)s->code_calls.k1[i],
                                       bytes64(&s->calls_of[s->code_calls.val[i]]));
        if (item == NULL) {
            goto done;
        }
        PyList_SET_ITEM(code_calls, (Py_ssize_t)i, item);
    }
    for (size_t i = 0; i < s->threads.n; i++) {
        PyObject *number = PyLong_FromLongLong(s->threads.k1[i]);
        if (number == NULL) {
            goto done;
        }
        PyList_SET_ITEM(threads, (Py_ssize_t)i, number);
    }
    out = Py_BuildValue("(LOOOOONOi)", (long long)s->steps, calls, hits, names, postings,
                        code_calls, bytes64(&s->exceptions), threads, s->has_values);
done:
    Py_XDECREF(calls);
    Py_XDECREF(hits);
    Py_XDECREF(names);
    Py_XDECREF(postings);
    Py_XDECREF(code_calls);
    Py_XDECREF(threads);
    return out;
}

static int
Pass_init(PassObject *s, PyObject *args, PyObject *kwds)
{
    Py_ssize_t max_line;
    int events = 0;
    if (!PyArg_ParseTuple(args, "n|p", &max_line, &events)) {
        return -1;
    }
    s->max_line = max_line;
    s->events = events;
    return 0;
}

static void
Pass_dealloc(PassObject *s)
{
    vec64 *vecs[] = {&s->line_code, &s->line_no, &s->name_off, &s->name_len, &s->name_next,
                     &s->c_start, &s->c_end, &s->c_depth, &s->c_code, &s->c_thread,
                     &s->c_parent, &s->c_vat, &s->c_vcount, &s->stack_order, &s->exceptions,
                     &s->values_out};
    for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++) {
        vec_free(vecs[i]);
    }
    map2 *maps[] = {&s->threads, &s->last_line, &s->hits, &s->codes, &s->code_calls,
                    &s->name_map, &s->module_scopes};
    for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) {
        map_free(maps[i]);
    }
    for (size_t i = 0; i < s->ncalls_of; i++) {
        vec_free(&s->calls_of[i]);
    }
    PyMem_RawFree(s->calls_of);
    for (size_t i = 0; i < s->postings_cap; i++) {
        vec_free(&s->postings[i]);
    }
    PyMem_RawFree(s->postings);
    for (size_t i = 0; i < s->nstacks; i++) {
        for (size_t j = 0; j < s->stacks[i].n; j++) {
            scope_clear(&s->stacks[i].p[j].scope);
        }
        PyMem_RawFree(s->stacks[i].p);
    }
    PyMem_RawFree(s->stacks);
    for (size_t i = 0; i < s->nmscopes; i++) {
        scope_clear(&s->mscopes[i]);
    }
    PyMem_RawFree(s->mscopes);
    buf_free(&s->last_gas);
    buf_free(&s->names);
    buf_free(&s->steps_out);
    bt_free_instance((PyObject *)s);
}

static PyMethodDef Pass_methods[] = {
    {"feed", (PyCFunction)Pass_feed, METH_VARARGS,
     "feed($self, buffer, pos, number, /)\n--\n\nTake the lines of buffer from byte pos (line "
     "number) that are read here; (stop, pos, number): stop 0 at the end of the buffer, 1 "
     "before a line for Python."},
    {"op", (PyCFunction)Pass_op, METH_VARARGS,
     "op($self, number, pc, depth, code, line, thread, gas, exception, locals, globals, "
     "module, /)\n--\n\nAn op or exception line read by Python; the step it is on."},
    {"code", (PyCFunction)Pass_code, METH_VARARGS,
     "code($self, code, file, /)\n--\n\nA code number first named by a call line, and its "
     "file's number (its module scope)."},
    {"call", (PyCFunction)Pass_call, METH_VARARGS,
     "call($self, number, thread, depth, code, first_line, /)\n--\n\nA call line read by Python."},
    {"ret", (PyCFunction)Pass_ret, METH_VARARGS,
     "ret($self, number, thread, depth, code, /)\n--\n\nA return line read by Python."},
    {"other", (PyCFunction)Pass_other, METH_NOARGS,
     "other($self, /)\n--\n\nAny other line read by Python (source, summary, ...)."},
    {"take", (PyCFunction)Pass_take, METH_NOARGS,
     "take($self, /)\n--\n\n(step records, values.bin bytes) made since the last call."},
    {"finish", (PyCFunction)Pass_finish, METH_NOARGS,
     "finish($self, /)\n--\n\nClose the open frames and module scopes: [(file, offset, "
     "count)] of the module scopes' blocks."},
    {"result", (PyCFunction)Pass_result, METH_NOARGS,
     "result($self, /)\n--\n\nThe other tables, as Python objects."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Pass_slots[] = {
    {Py_tp_init, Pass_init},
    {Py_tp_dealloc, Pass_dealloc},
    {Py_tp_methods, Pass_methods},
    {Py_tp_doc, "TablesPass(max_line, events=False)\n--\n\nThe viewer's table pass over one "
                "trace (see blocktrace.view.tables)."},
    {0, NULL},
};

static PyType_Spec Pass_spec = {
    .name = "blocktrace.view._ctables.TablesPass",
    .basicsize = sizeof(PassObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Pass_slots,
};

static int
ctables_exec(PyObject *m)
{
    bt_lines_init();
    return bt_add_type(m, &Pass_spec, "TablesPass");
}

static PyModuleDef_Slot ctables_slots[] = {
    {Py_mod_exec, ctables_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef ctables_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.view._ctables",
    .m_doc = "The viewer's table pass in C (see blocktrace/view/tables.py).",
    .m_size = 0,
    .m_slots = ctables_slots,
};

PyMODINIT_FUNC
PyInit__ctables(void)
{
    return PyModuleDef_Init(&ctables_module);
}

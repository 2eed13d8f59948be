/* OpColumns: the lines of a blocktrace trace straight into column buffers, for the
 * query tables `ops`, `calls` and `exceptions` (blocktrace/query/tables.py),
 * without a Python object per line.  blocktrace/query/columns.py's PyColumns is
 * the reference: the same methods, the same rows, in Python.
 *
 * feed() takes the lines in the exact forms the writer writes, in its order of
 * members:
 *
 *   {"pc":N,"op":N,"gas":"0xH","gasCost":"0x1","depth":N,"opName":"NAME","line":N,
 *    "code":N[,"thread":N],"hash":"<64 hex>"}
 *   {"pc":N,"op":N,"gas":"0xH","gasCost":"0x0","depth":N,"opName":"NAME","error":"S",
 *    "line":N,"code":N,"event":"S"[,"thread":N][,"clock":N],"hash":"<64 hex>"}
 *   {"event":"call","kind":"S","depth":N,"code":N,"name":"S","file":"S","firstLine":N
 *    [,"thread":N][,"clock":N],"hash":"<64 hex>"}
 *   {"event":"return","kind":"S","depth":N,"code":N,"pc":N,"gas":"0xH","value":V
 *    [,"thread":N][,"clock":N],"hash":"<64 hex>"}
 *
 * (S a string of printable ASCII without escapes, V null, true, false, an integer
 * or such a string) and stops before any other line (another kind, values, an
 * escape, non-ASCII text, a number of another form, a member it does not expect):
 * Python decodes that one with the format's Structs and hands its fields to op(),
 * call(), ret() or exception(), which do what feed() does for a line it reads.  So
 * every row is what blocktrace.format.decode_line reads from the lines; this only
 * reads them sooner.  Hashes are not checked here (verify does that).  The op,
 * call and return lines are read by the format's one C reader of them
 * (linereader.h), which says what each line is; the forms above are the part of
 * its forms these columns hold (the exception line's last members are read here).
 *
 * The call stack of each thread is kept here: a return line ends the frame on
 * top of its thread's stack and makes the `calls` row.  Strings that repeat
 * (function and file names, kinds, exception types, op names of exception lines)
 * are interned: their columns hold numbers into strings(); a function/file/first
 * line triple is an "entry" (entry 0: none), the one a code number has now is
 * code_entries()[code]. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "linereader.h"
#include "pyutil.h"

#include "columns.h"


enum { COL_END = 0, COL_OTHER = 1, COL_FULL = 2 };

#define MAX_CODE (1 << 24) /* code numbers beyond: Python's error */

typedef struct {
    char *p;
    size_t len, cap;
} grow_t;

static int
grow_reserve(grow_t *g, size_t n)
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
    return 0;
}

static int
grow_put(grow_t *g, const void *src, size_t n)
{
    if (grow_reserve(g, n) < 0) {
        return -1;
    }
    memcpy(g->p + g->len, src, n);
    g->len += n;
    return 0;
}

static int
put64(grow_t *g, int64_t v)
{
    return grow_put(g, &v, 8);
}

static int
put32(grow_t *g, int64_t v)
{
    int32_t i = (int32_t)v;
    return grow_put(g, &i, 4);
}

/* A column that may hold NULL: data, and a validity bitmap (Arrow's). */
typedef struct {
    grow_t data, bits;
    int64_t n, nulls;
} ncol_t;

static int
nbit(ncol_t *c, int valid)
{
    if (c->n % 8 == 0) {
        uint8_t zero = 0;
        if (grow_put(&c->bits, &zero, 1) < 0) {
            return -1;
        }
    }
    if (valid) {
        ((uint8_t *)c->bits.p)[c->bits.len - 1] |= (uint8_t)(1u << (c->n % 8));
    } else {
        c->nulls++;
    }
    c->n++;
    return 0;
}

/* an int64 or NULL (present == 0) */
static int
nput64(ncol_t *c, int present, int64_t v)
{
    return nbit(c, present) || put64(&c->data, present ? v : 0);
}

/* an int32 or NULL (v < 0: kept as -1, so gather() reads NULL from the data alone) */
static int
nput32(ncol_t *c, int64_t v)
{
    return nbit(c, v >= 0) || put32(&c->data, v >= 0 ? v : -1);
}

/* A column of strings that may hold NULL: int32 offsets (data.len so far), bytes. */
typedef struct {
    ncol_t off; /* off.data holds the offsets; off.bits the validity */
    grow_t bytes;
} scol_t;

static int
sput(scol_t *c, const void *s, size_t n, int present)
{
    if (!present) {
        n = 0;
    }
    if (c->bytes.len + n > INT32_MAX) {
        return -1;
    }
    if (n && grow_put(&c->bytes, s, n) < 0) {
        return -1;
    }
    return nbit(&c->off, present) || put32(&c->off.data, (int64_t)c->bytes.len);
}

static void
ncol_clear(ncol_t *c)
{
    c->data.len = c->bits.len = 0;
    c->n = c->nulls = 0;
}

static void
grow_free(grow_t *g)
{
    PyMem_RawFree(g->p);
    g->p = NULL;
    g->len = g->cap = 0;
}

/* -- interned strings ------------------------------------------------------------ */

typedef struct {
    grow_t bytes;     /* the strings' bytes, one after another */
    grow_t offsets;   /* int64 start of each, and one past the last */
    int32_t *slots;   /* open addressing: id + 1, 0 empty */
    size_t nslots;
    int32_t count;
} strings_t;

static uint64_t
fnv(const uint8_t *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 1099511628211ull;
    }
    return h;
}

static const uint8_t *
str_at(const strings_t *t, int32_t id, size_t *n)
{
    const int64_t *off = (const int64_t *)t->offsets.p;
    *n = (size_t)(off[id + 1] - off[id]);
    return (const uint8_t *)t->bytes.p + off[id];
}

static int
strings_rehash(strings_t *t, size_t nslots)
{
    int32_t *slots = PyMem_RawCalloc(nslots, sizeof(int32_t));
    if (slots == NULL) {
        return -1;
    }
    for (int32_t id = 0; id < t->count; id++) {
        size_t n;
        const uint8_t *s = str_at(t, id, &n);
        size_t i = (size_t)fnv(s, n) & (nslots - 1);
        while (slots[i]) {
            i = (i + 1) & (nslots - 1);
        }
        slots[i] = id + 1;
    }
    PyMem_RawFree(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return 0;
}

/* the id of string [s, s + n), added if new; -1 out of memory */
static int32_t
intern(strings_t *t, const uint8_t *s, size_t n)
{
    if (t->offsets.len == 0 && put64(&t->offsets, 0) < 0) {
        return -1;
    }
    if ((size_t)(t->count + 1) * 2 > t->nslots
        && strings_rehash(t, t->nslots ? t->nslots * 2 : 64) < 0) {
        return -1;
    }
    size_t i = (size_t)fnv(s, n) & (t->nslots - 1);
    while (t->slots[i]) {
        size_t m;
        const uint8_t *have = str_at(t, t->slots[i] - 1, &m);
        if (m == n && memcmp(have, s, n) == 0) {
            return t->slots[i] - 1;
        }
        i = (i + 1) & (t->nslots - 1);
    }
    if (t->count == INT32_MAX - 1 || grow_put(&t->bytes, s, n) < 0
        || put64(&t->offsets, (int64_t)t->bytes.len) < 0) {
        return -1;
    }
    t->slots[i] = ++t->count;
    return t->count - 1;
}

/* -- the state ---------------------------------------------------------------------- */

typedef struct {
    int64_t call_id, parent, step_in, line_in, clock_in, child;
    int32_t depth, code, kind;
    int has_clock;
} frame_t;

typedef struct {
    int64_t thread;
    frame_t *f;
    size_t n, cap;
} stack_t_;

/* last_error: (thread, depth) -> exception type id (-1: the error had none) */
typedef struct {
    int64_t thread, depth;
    int32_t type;
    uint8_t used; /* 0 empty, 1 used, 2 deleted */
} errslot_t;

enum { C_STEP, C_LINE_NO, C_THREAD, C_DEPTH, C_PC, C_OP, C_GAS, C_LINE, C_CODE, C_NAME_OFF, C_NAME,
       C_COUNT };

/* calls: plain columns, then the ones that may be NULL */
enum { K_CALL_ID, K_THREAD, K_DEPTH, K_CODE, K_ENTRY, K_KIND, K_STEP_IN, K_LINE_IN, K_COUNT };
enum { KN_PARENT, KN_STEP_OUT, KN_STEPS, KN_SELF, KN_ENDED, KN_EXC, KN_LINE_OUT, KN_CLOCK_IN,
       KN_CLOCK_OUT, KN_COUNT };
/* exceptions */
enum { E_STEP, E_LINE_NO, E_THREAD, E_DEPTH, E_PC, E_OP, E_OPNAME, E_LINE, E_CODE, E_ENTRY,
       E_KIND, E_COUNT };
enum { EN_TYPE, EN_CLOCK, EN_COUNT };

typedef struct {
    PyObject_HEAD
    grow_t col[C_COUNT];
    int64_t rows; /* ops rows held */
    int32_t name_end;
    int failed;
    int ops_only;  /* feed: plain op lines only (a skim: every other line is Python's) */
    int64_t steps; /* ops rows ever */
    int64_t calls; /* calls entered */
    int64_t max_depth;
    strings_t str;
    /* entries: (name id, file id, first line) triples, entry 0 none */
    grow_t entries;  /* int32 x 3 each */
    grow_t code_entry; /* int32 per code number */
    stack_t_ *stacks;
    size_t nstacks, last_stack;
    errslot_t *errs;
    size_t nerrs, errs_used;
    /* calls rows held */
    grow_t k[K_COUNT];
    ncol_t kn[KN_COUNT];
    scol_t value;
    int64_t call_rows;
    /* exceptions rows held */
    grow_t e[E_COUNT];
    ncol_t en[EN_COUNT];
    scol_t message;
    int64_t exc_rows;
    /* take_known(): the lines feed read whole, bit k for line known_first + k */
    int keep_known;
    int64_t known_first;
    grow_t known;
} ColumnsObject;

#define EXPECT(lit) bt_lit(&p, end, lit, sizeof(lit) - 1)

void
columns_init_tables(void)
{
    bt_lines_init();
}

/* [,"thread":N][,"clock":N] (as allowed) then ,"hash":"<64 lowercase hex>"} to end */
static int
read_tail(const uint8_t *p, const uint8_t *end, int64_t *thread, int64_t *clock, int *has_clock,
          int clock_ok)
{
    int has_thread;
    if (bt_thread_clock(&p, end, thread, &has_thread, clock, has_clock) || *thread > INT32_MAX
        || (*has_clock && !clock_ok)) {
        return -1;
    }
    if (!has_thread) {
        *thread = 1;
    }
    return bt_hash_end(p, end);
}

/* -- the rows ---------------------------------------------------------------------- */

static int
add_op(ColumnsObject *c, int64_t line_no, int64_t thread, int64_t depth, int64_t pc, int64_t op,
       const char *name, size_t name_len, int64_t gas, int64_t line, int64_t code)
{
    if (c->name_end > INT32_MAX - (int64_t)name_len) {
        return -1;
    }
    c->name_end += (int32_t)name_len;
    if (put64(&c->col[C_STEP], c->steps) || put64(&c->col[C_LINE_NO], line_no)
        || put64(&c->col[C_PC], pc)
        || put64(&c->col[C_GAS], gas) || put32(&c->col[C_THREAD], thread)
        || put32(&c->col[C_DEPTH], depth) || put32(&c->col[C_OP], op)
        || put32(&c->col[C_LINE], line) || put32(&c->col[C_CODE], code)
        || grow_put(&c->col[C_NAME], name, name_len)
        || grow_put(&c->col[C_NAME_OFF], &c->name_end, 4)) {
        return -1;
    }
    c->rows++;
    c->steps++;
    return 0;
}

static stack_t_ *
stack_of(ColumnsObject *c, int64_t thread, int create)
{
    if (c->last_stack < c->nstacks && c->stacks[c->last_stack].thread == thread) {
        return &c->stacks[c->last_stack];
    }
    for (size_t i = 0; i < c->nstacks; i++) {
        if (c->stacks[i].thread == thread) {
            c->last_stack = i;
            return &c->stacks[i];
        }
    }
    if (!create) {
        return NULL;
    }
    stack_t_ *more = PyMem_RawRealloc(c->stacks, (c->nstacks + 1) * sizeof(stack_t_));
    if (more == NULL) {
        return NULL;
    }
    c->stacks = more;
    memset(&more[c->nstacks], 0, sizeof(stack_t_));
    more[c->nstacks].thread = thread;
    c->last_stack = c->nstacks++;
    return &more[c->last_stack];
}

static uint64_t
err_hash(int64_t thread, int64_t depth)
{
    return ((uint64_t)thread * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)depth * 0xC2B2AE3D27D4EB4Full);
}

/* the slot of (thread, depth), or NULL */
static errslot_t *
err_find(ColumnsObject *c, int64_t thread, int64_t depth)
{
    if (c->nerrs == 0) {
        return NULL;
    }
    size_t i = (size_t)err_hash(thread, depth) & (c->nerrs - 1);
    while (c->errs[i].used) {
        if (c->errs[i].used == 1 && c->errs[i].thread == thread && c->errs[i].depth == depth) {
            return &c->errs[i];
        }
        i = (i + 1) & (c->nerrs - 1);
    }
    return NULL;
}

static int
err_set(ColumnsObject *c, int64_t thread, int64_t depth, int32_t type)
{
    errslot_t *s = err_find(c, thread, depth);
    if (s != NULL) {
        s->type = type;
        return 0;
    }
    if ((c->errs_used + 1) * 2 > c->nerrs) { /* rebuild (drops the deleted slots) */
        size_t n = c->nerrs ? c->nerrs : 16;
        size_t live = 0;
        for (size_t i = 0; i < c->nerrs; i++) {
            live += c->errs[i].used == 1;
        }
        while ((live + 1) * 4 > n) {
            n *= 2;
        }
        errslot_t *slots = PyMem_RawCalloc(n, sizeof(errslot_t));
        if (slots == NULL) {
            return -1;
        }
        for (size_t i = 0; i < c->nerrs; i++) {
            if (c->errs[i].used == 1) {
                size_t j = (size_t)err_hash(c->errs[i].thread, c->errs[i].depth) & (n - 1);
                while (slots[j].used) {
                    j = (j + 1) & (n - 1);
                }
                slots[j] = c->errs[i];
            }
        }
        PyMem_RawFree(c->errs);
        c->errs = slots;
        c->nerrs = n;
        c->errs_used = live;
    }
    size_t i = (size_t)err_hash(thread, depth) & (c->nerrs - 1);
    while (c->errs[i].used == 1) {
        i = (i + 1) & (c->nerrs - 1);
    }
    if (c->errs[i].used == 0) {
        c->errs_used++;
    }
    c->errs[i].thread = thread;
    c->errs[i].depth = depth;
    c->errs[i].type = type;
    c->errs[i].used = 1;
    return 0;
}

/* the type id of error [s, s + n): the text before ": ", or all of it; -1 for none */
static int32_t
error_type(ColumnsObject *c, const uint8_t *s, size_t n, const uint8_t **msg, size_t *msg_len)
{
    *msg = NULL;
    *msg_len = 0;
    if (n == 0) {
        return -1;
    }
    size_t k = n;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] == ':' && s[i + 1] == ' ') {
            k = i;
            *msg = s + i + 2;
            *msg_len = n - i - 2;
            break;
        }
    }
    int32_t id = intern(&c->str, s, k);
    return id < 0 ? -2 : id;
}

static int32_t
entry_of(ColumnsObject *c, int64_t code)
{
    if (code < 0 || (size_t)code >= c->code_entry.len / 4) {
        return 0;
    }
    return ((int32_t *)c->code_entry.p)[code];
}

static int
add_call(ColumnsObject *c, int64_t line_no, int64_t thread, int64_t depth, int64_t code,
         const uint8_t *kind, size_t kind_len, const uint8_t *name, size_t name_len,
         const uint8_t *file, size_t file_len, int64_t first_line, int has_clock, int64_t clock)
{
    if (code < 0 || code >= MAX_CODE) {
        PyErr_Format(PyExc_ValueError, "code number %lld is beyond %d", (long long)code,
                     MAX_CODE);
        return -2;
    }
    while (c->code_entry.len / 4 <= (size_t)code) {
        if (put32(&c->code_entry, 0) < 0) {
            return -1;
        }
    }
    int32_t *entry = &((int32_t *)c->code_entry.p)[code];
    int32_t *have = *entry ? &((int32_t *)c->entries.p)[*entry * 3] : NULL;
    size_t n;
    const uint8_t *s;
    if (have == NULL || have[2] != (int32_t)first_line
        || (s = str_at(&c->str, have[0], &n), n != name_len || memcmp(s, name, n) != 0)
        || (s = str_at(&c->str, have[1], &n), n != file_len || memcmp(s, file, n) != 0)) {
        int32_t name_id = intern(&c->str, name, name_len);
        int32_t file_id = intern(&c->str, file, file_len);
        if (name_id < 0 || file_id < 0 || c->entries.len / 12 >= INT32_MAX) {
            return -1;
        }
        if (c->entries.len == 0) { /* entry 0: none */
            int32_t none[3] = {-1, -1, -1};
            if (grow_put(&c->entries, none, 12) < 0) {
                return -1;
            }
        }
        int32_t triple[3] = {name_id, file_id, (int32_t)first_line};
        if (grow_put(&c->entries, triple, 12) < 0) {
            return -1;
        }
        *entry = (int32_t)(c->entries.len / 12 - 1);
    }
    int32_t kind_id = intern(&c->str, kind, kind_len);
    stack_t_ *st = stack_of(c, thread, 1);
    if (kind_id < 0 || st == NULL) {
        return -1;
    }
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        frame_t *more = PyMem_RawRealloc(st->f, cap * sizeof(frame_t));
        if (more == NULL) {
            return -1;
        }
        st->f = more;
        st->cap = cap;
    }
    if (depth > c->max_depth) {
        c->max_depth = depth;
    }
    frame_t *f = &st->f[st->n++];
    f->call_id = c->calls++;
    f->parent = st->n > 1 ? st->f[st->n - 2].call_id : -1;
    f->depth = (int32_t)depth;
    f->code = (int32_t)code;
    f->kind = kind_id;
    f->step_in = c->steps;
    f->line_in = line_no;
    f->has_clock = has_clock;
    f->clock_in = clock;
    f->child = 0;
    return 0;
}

/* the calls row of frame f; ended < 0: it never stopped (then the rest is unused) */
static int
call_row(ColumnsObject *c, int64_t thread, const frame_t *f, int32_t ended, int32_t exc,
         int64_t steps, int64_t line_out, int has_clock, int64_t clock_out,
         const uint8_t *value, size_t value_len)
{
    int out = ended >= 0;
    if (put64(&c->k[K_CALL_ID], f->call_id) || put32(&c->k[K_THREAD], thread)
        || put32(&c->k[K_DEPTH], f->depth) || put32(&c->k[K_CODE], f->code)
        || put32(&c->k[K_ENTRY], entry_of(c, f->code)) || put32(&c->k[K_KIND], f->kind)
        || put64(&c->k[K_STEP_IN], f->step_in) || put64(&c->k[K_LINE_IN], f->line_in)
        || nput64(&c->kn[KN_PARENT], f->parent >= 0, f->parent)
        || nput64(&c->kn[KN_STEP_OUT], out, c->steps) || nput64(&c->kn[KN_STEPS], out, steps)
        || nput64(&c->kn[KN_SELF], out, steps - f->child) || nput32(&c->kn[KN_ENDED], ended)
        || nput32(&c->kn[KN_EXC], exc) || nput64(&c->kn[KN_LINE_OUT], out, line_out)
        || nput64(&c->kn[KN_CLOCK_IN], f->has_clock, f->clock_in)
        || nput64(&c->kn[KN_CLOCK_OUT], out && has_clock, clock_out)
        || sput(&c->value, value, value_len, out && value != NULL)) {
        return -1;
    }
    c->call_rows++;
    return 0;
}

static int
add_return(ColumnsObject *c, int64_t line_no, int64_t thread, const uint8_t *kind,
           size_t kind_len, const uint8_t *value, size_t value_len, int has_clock, int64_t clock)
{
    stack_t_ *st = stack_of(c, thread, 0);
    if (st == NULL || st->n == 0) {
        return 0;
    }
    int32_t ended = intern(&c->str, kind, kind_len);
    if (ended < 0) {
        return -1;
    }
    frame_t f = st->f[--st->n];
    int64_t steps = c->steps - f.step_in;
    if (st->n) {
        st->f[st->n - 1].child += steps;
    }
    int32_t exc = -1;
    errslot_t *s = err_find(c, thread, f.depth);
    if (s != NULL) {
        s->used = 2;
        size_t n;
        const uint8_t *e = str_at(&c->str, ended, &n);
        if (n == 6 && memcmp(e, "unwind", 6) == 0) {
            exc = s->type;
        }
    }
    return call_row(c, thread, &f, ended, exc, steps, line_no, has_clock, clock, value,
                    value_len);
}

static int
add_exception(ColumnsObject *c, int64_t line_no, int64_t thread, int64_t depth, int64_t pc,
              int64_t op, const uint8_t *op_name, size_t op_name_len, int64_t line, int64_t code,
              const uint8_t *event, size_t event_len, const uint8_t *error, size_t error_len,
              int has_clock, int64_t clock)
{
    const uint8_t *msg;
    size_t msg_len;
    int32_t type = error_type(c, error, error_len, &msg, &msg_len);
    int32_t name_id = intern(&c->str, op_name, op_name_len);
    int32_t kind_id = intern(&c->str, event, event_len);
    if (type == -2 || name_id < 0 || kind_id < 0) {
        return -1;
    }
    if (put64(&c->e[E_STEP], c->steps) || put64(&c->e[E_LINE_NO], line_no)
        || put32(&c->e[E_THREAD], thread) || put32(&c->e[E_DEPTH], depth)
        || put64(&c->e[E_PC], pc) || put32(&c->e[E_OP], op) || put32(&c->e[E_OPNAME], name_id)
        || put32(&c->e[E_LINE], line) || put32(&c->e[E_CODE], code)
        || put32(&c->e[E_ENTRY], entry_of(c, code)) || put32(&c->e[E_KIND], kind_id)
        || nput32(&c->en[EN_TYPE], type) || nput64(&c->en[EN_CLOCK], has_clock, clock)
        || sput(&c->message, msg, msg_len, msg != NULL)) {
        return -1;
    }
    c->exc_rows++;
    if (!(event_len == 7 && memcmp(event, "handled", 7) == 0)) {
        return err_set(c, thread, depth, type);
    }
    return 0;
}

/* -- reading the lines ------------------------------------------------------------ */

/* One line [p, end) (no newline) of the forms above into the columns: 0; 1 when it
 * is not one of them; -1 out of memory. */
static int
read_line(ColumnsObject *c, const uint8_t *p, const uint8_t *end, int64_t line_no)
{
    if (end - p > 6 && p[2] == 'p') {
        BtOpLine o;
        if (bt_op_head(&p, end, &o) || o.cost_len != 3) {
            return 1;
        }
        if (o.cost_text[2] == '1') { /* an op line */
            if (bt_op_rest(p, end, &o, NULL, NULL) || o.has_clock
                || o.gas > (uint64_t)INT64_MAX /* beyond the column: Python's path says so */
                || (o.has_thread && o.thread > INT32_MAX) || o.depth > INT32_MAX
                || o.op > INT32_MAX || o.line > INT32_MAX || o.code > INT32_MAX) {
                return 1;
            }
            return add_op(c, line_no, o.has_thread ? o.thread : 1, o.depth, o.pc, o.op,
                          (const char *)o.name, o.name_len, (int64_t)o.gas, o.line,
                          o.code) < 0 ? -1 : 0;
        }
        if (c->ops_only || o.cost_text[2] != '0') {
            return 1;
        }
        /* an exception line: the op line's first members, then
         * "opName":"S","error":"S","line":N,"code":N,"event":"S"[,"thread":N][,"clock":N] */
        int64_t line, code, thread, clock = 0;
        int has_clock;
        const uint8_t *s1, *s2, *s3;
        size_t n1, n2, n3;
        if (bt_plain_str(&p, end, &s1, &n1) || EXPECT(",\"error\":\"")
            || bt_plain_str(&p, end, &s2, &n2) || EXPECT(",\"line\":")
            || json_uint(&p, end, &line) || EXPECT(",\"code\":") || json_uint(&p, end, &code)
            || EXPECT(",\"event\":\"") || bt_plain_str(&p, end, &s3, &n3)
            || read_tail(p, end, &thread, &clock, &has_clock, 1) || o.depth > INT32_MAX
            || o.op > INT32_MAX || line > INT32_MAX || code > INT32_MAX) {
            return 1;
        }
        thread += thread == 0; /* `thread or 1`, as the reference */
        return add_exception(c, line_no, thread, o.depth, o.pc, o.op, s1, n1, line, code, s3,
                             n3, s2, n2, has_clock, clock) < 0 ? -1 : 0;
    }
    if (c->ops_only) {
        return 1;
    }
    if (end - p > (ptrdiff_t)LINE_CALL_PREFIX_LEN && p[10] == 'c') {
        BtCallLine l;
        if (bt_call_line(p, end, &l) || !l.plain || (l.has_thread && l.thread > INT32_MAX)
            || l.depth > INT32_MAX || l.code >= MAX_CODE || l.first_line > INT32_MAX) {
            return 1;
        }
        int64_t thread = l.has_thread ? l.thread : 1;
        thread += thread == 0;
        return add_call(c, line_no, thread, l.depth, l.code, l.kind, l.kind_len, l.name,
                        l.name_len, l.file, l.file_len, l.first_line, l.has_clock,
                        l.has_clock ? l.clock : 0) < 0 ? -1 : 0;
    }
    if (end - p > (ptrdiff_t)LINE_RETURN_PREFIX_LEN && p[10] == 'r') {
        BtReturnLine r;
        if (bt_return_line(p, end, &r) || !r.plain || r.value == NULL
            || (r.has_thread && r.thread > INT32_MAX)) {
            return 1;
        }
        int64_t thread = r.has_thread ? r.thread : 1;
        thread += thread == 0;
        return add_return(c, line_no, thread, r.kind, r.kind_len, r.value, r.value_len,
                          r.has_clock, r.has_clock ? r.clock : 0) < 0 ? -1 : 0;
    }
    return 1;
}

/* line line_no was read whole: its bit in the map take_known() gives */
static int
known_set(ColumnsObject *c, int64_t line_no)
{
    int64_t k = line_no - c->known_first;
    if (!c->keep_known || k < 0) {
        return 0;
    }
    size_t byte = (size_t)(k >> 3);
    if (byte >= c->known.len) {
        size_t add = byte + 1 - c->known.len;
        if (grow_reserve(&c->known, add) < 0) {
            return -1;
        }
        memset(c->known.p + c->known.len, 0, add);
        c->known.len += add;
    }
    c->known.p[byte] |= (char)(1u << (k & 7));
    return 0;
}

static int
is_full(ColumnsObject *c, long long max_rows)
{
    return c->rows >= max_rows || c->call_rows >= max_rows || c->exc_rows >= max_rows;
}

static PyObject *
columns_feed(ColumnsObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (!bt_nargs(nargs, 4, "feed(buffer, pos, line_no, max_rows)")) {
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
        return bt_release_raise(&view, PyExc_ValueError, "pos outside the buffer");
    }
    const uint8_t *buf = view.buf;
    int code = COL_END;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    while (pos < view.len) {
        if (is_full(c, max_rows)) {
            code = COL_FULL;
            break;
        }
        const uint8_t *line = buf + pos;
        const uint8_t *nl = memchr(line, '\n', (size_t)(view.len - pos));
        if (nl == NULL) {
            break;
        }
        int r = read_line(c, line, nl, line_no);
        if (r == 0 && known_set(c, line_no) < 0) {
            r = -1;
        }
        if (r != 0) {
            code = COL_OTHER;
            failed = r < 0;
            break;
        }
        pos += nl - line + 1;
        line_no++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (failed) {
        return PyErr_NoMemory();
    }
    return Py_BuildValue("(inL)", code, pos, line_no);
}

/* -- what Python read -------------------------------------------------------------- */

static int
arg_ints(PyObject *const *args, const int *which, int count, int64_t *out)
{
    for (int i = 0; i < count; i++) {
        out[i] = PyLong_AsLongLong(args[which[i]]);
        if (out[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

/* str -> UTF-8 (or None -> NULL when none_ok) */
static int
arg_str(PyObject *o, const uint8_t **s, size_t *n, int none_ok)
{
    if (o == Py_None && none_ok) {
        *s = NULL;
        *n = 0;
        return 0;
    }
    if (!PyUnicode_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "a str expected");
        return -1;
    }
    Py_ssize_t len;
    const char *u = PyUnicode_AsUTF8AndSize(o, &len);
    if (u == NULL) {
        return -1;
    }
    *s = (const uint8_t *)u;
    *n = (size_t)len;
    return 0;
}

static PyObject *
done(int r)
{
    if (r == -1) {
        return PyErr_NoMemory();
    }
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
columns_op(ColumnsObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    /* line_no, thread, depth, pc, op, opName, gas, line, code */
    static const int ints[] = {0, 1, 2, 3, 4, 6, 7, 8};
    int64_t v[8];
    const uint8_t *name;
    size_t name_len;
    if (!bt_nargs(nargs, 9, "op(line_no, thread, depth, pc, op, opName, gas, line, code)")) {
        return NULL;
    }
    if (arg_ints(args, ints, 8, v) < 0 || arg_str(args[5], &name, &name_len, 0) < 0) {
        return NULL;
    }
    if (c->name_end > INT32_MAX - (int64_t)name_len) {
        PyErr_SetString(PyExc_OverflowError, "opName column too large for one batch");
        return NULL;
    }
    return done(add_op(c, v[0], v[1], v[2], v[3], v[4], (const char *)name, name_len, v[5], v[6],
                       v[7]));
}

static PyObject *
columns_call(ColumnsObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    /* line_no, thread, depth, code, kind, name, file, first_line, clock */
    static const int ints[] = {0, 1, 2, 3, 7};
    int64_t v[5], clock = 0;
    const uint8_t *kind, *name, *file;
    size_t kind_len, name_len, file_len;
    if (!bt_nargs(nargs, 9,
                  "call(line_no, thread, depth, code, kind, name, file, first_line, clock)")) {
        return NULL;
    }
    if (arg_ints(args, ints, 5, v) < 0 || arg_str(args[4], &kind, &kind_len, 0) < 0
        || arg_str(args[5], &name, &name_len, 0) < 0 || arg_str(args[6], &file, &file_len, 0) < 0
        || (args[8] != Py_None && (clock = PyLong_AsLongLong(args[8])) == -1 && PyErr_Occurred())) {
        return NULL;
    }
    return done(add_call(c, v[0], v[1], v[2], v[3], kind, kind_len, name, name_len, file,
                         file_len, v[4], args[8] != Py_None, clock));
}

static PyObject *
columns_ret(ColumnsObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    /* line_no, thread, kind, value (JSON text), clock */
    int64_t v[2], clock = 0;
    static const int ints[] = {0, 1};
    const uint8_t *kind, *value;
    size_t kind_len, value_len;
    if (!bt_nargs(nargs, 5, "ret(line_no, thread, kind, value, clock)")) {
        return NULL;
    }
    if (arg_ints(args, ints, 2, v) < 0 || arg_str(args[2], &kind, &kind_len, 0) < 0
        || arg_str(args[3], &value, &value_len, 0) < 0
        || (args[4] != Py_None && (clock = PyLong_AsLongLong(args[4])) == -1 && PyErr_Occurred())) {
        return NULL;
    }
    return done(add_return(c, v[0], v[1], kind, kind_len, value, value_len, args[4] != Py_None,
                           clock));
}

static PyObject *
columns_exception(ColumnsObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    /* line_no, thread, depth, pc, op, opName, line, code, event, error, clock */
    static const int ints[] = {0, 1, 2, 3, 4, 6, 7};
    int64_t v[7], clock = 0;
    const uint8_t *name, *event, *error;
    size_t name_len, event_len, error_len;
    if (!bt_nargs(nargs, 11, "exception(line_no, thread, depth, pc, op, opName, line, code, "
                             "event, error, clock)")) {
        return NULL;
    }
    if (arg_ints(args, ints, 7, v) < 0 || arg_str(args[5], &name, &name_len, 0) < 0
        || arg_str(args[8], &event, &event_len, 0) < 0
        || arg_str(args[9], &error, &error_len, 0) < 0
        || (args[10] != Py_None && (clock = PyLong_AsLongLong(args[10])) == -1
            && PyErr_Occurred())) {
        return NULL;
    }
    return done(add_exception(c, v[0], v[1], v[2], v[3], v[4], name, name_len, v[5], v[6], event,
                              event_len, error, error_len, args[10] != Py_None, clock));
}

static PyObject *
columns_finish(ColumnsObject *c, PyObject *unused)
{
    for (size_t i = 0; i < c->nstacks; i++) {
        stack_t_ *st = &c->stacks[i];
        while (st->n) {
            frame_t f = st->f[--st->n];
            if (call_row(c, st->thread, &f, -1, -1, 0, 0, 0, 0, NULL, 0) < 0) {
                return PyErr_NoMemory();
            }
        }
    }
    Py_RETURN_NONE;
}

/* -- taking the columns --------------------------------------------------------------- */

static PyObject *
bytes_of(grow_t *g)
{
    return PyBytes_FromStringAndSize(g->p ? g->p : "", (Py_ssize_t)g->len);
}

/* (data, validity or None) of a column that may hold NULL */
static PyObject *
ncol_take(ncol_t *c)
{
    PyObject *data = bytes_of(&c->data);
    PyObject *bits = c->nulls ? bytes_of(&c->bits) : Py_NewRef(Py_None);
    PyObject *out = (data && bits) ? PyTuple_Pack(2, data, bits) : NULL;
    Py_XDECREF(data);
    Py_XDECREF(bits);
    return out;
}

static PyObject *
scol_take(scol_t *c)
{
    PyObject *off = ncol_take(&c->off);
    PyObject *data = bytes_of(&c->bytes);
    PyObject *out = (off && data) ? Py_BuildValue("(OO)", off, data) : NULL;
    Py_XDECREF(off);
    Py_XDECREF(data);
    c->bytes.len = 0;
    ncol_clear(&c->off);
    put32(&c->off.data, 0); /* cannot fail: the buffer only grows */
    return out;
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
    /* (rows, step, line_no, thread, depth, pc, op, name offsets, name data, gas, line, code) */
    static const int order[] = {C_STEP, C_LINE_NO, C_THREAD, C_DEPTH, C_PC, C_OP, C_NAME_OFF, C_NAME,
                                C_GAS, C_LINE, C_CODE};
    PyObject *out = PyTuple_New(12);
    if (out == NULL) {
        return NULL;
    }
    PyObject *rows = PyLong_FromLongLong(c->rows);
    if (rows == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, rows);
    for (int i = 0; i < 11; i++) {
        PyObject *b = bytes_of(&c->col[order[i]]);
        if (b == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i + 1, b);
    }
    columns_reset(c);
    return out;
}

/* (rows, plain columns..., (data, validity) of the others..., ((offsets, validity), data)) */
static PyObject *
take_table(int64_t *rows, grow_t *plain, int nplain, ncol_t *nullable, int nnullable,
           scol_t *text)
{
    PyObject *out = PyTuple_New(1 + nplain + nnullable + 1);
    if (out == NULL) {
        return NULL;
    }
    PyObject *item = PyLong_FromLongLong(*rows);
    for (int i = 0; item != NULL; i++) {
        PyTuple_SET_ITEM(out, i, item);
        if (i == nplain + nnullable + 1) {
            break;
        }
        if (i < nplain) {
            item = bytes_of(&plain[i]);
        } else if (i < nplain + nnullable) {
            item = ncol_take(&nullable[i - nplain]);
        } else {
            item = scol_take(text);
        }
    }
    if (item == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    for (int i = 0; i < nplain; i++) {
        plain[i].len = 0;
    }
    for (int i = 0; i < nnullable; i++) {
        ncol_clear(&nullable[i]);
    }
    *rows = 0;
    return out;
}

static PyObject *
columns_take_calls(ColumnsObject *c, PyObject *unused)
{
    return take_table(&c->call_rows, c->k, K_COUNT, c->kn, KN_COUNT, &c->value);
}

static PyObject *
columns_take_exceptions(ColumnsObject *c, PyObject *unused)
{
    return take_table(&c->exc_rows, c->e, E_COUNT, c->en, EN_COUNT, &c->message);
}

static PyObject *
columns_strings(ColumnsObject *c, PyObject *arg)
{
    Py_ssize_t start = PyLong_AsSsize_t(arg);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (start < 0 || start > c->str.count) {
        PyErr_SetString(PyExc_ValueError, "start outside the strings");
        return NULL;
    }
    PyObject *out = PyList_New(c->str.count - start);
    for (Py_ssize_t i = start; out != NULL && i < c->str.count; i++) {
        size_t n;
        const uint8_t *s = str_at(&c->str, (int32_t)i, &n);
        PyObject *u = PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "strict");
        if (u == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i - start, u);
    }
    return out;
}

enum { G_STRING, G_FUNCTION, G_FILE, G_FIRST_LINE, G_CODE_FUNCTION, G_CODE_FILE, G_COUNT };

/* gather(): the string id (or, for G_FIRST_LINE, the entry) row id stands for; -1 NULL */
static inline int32_t
gather_one(ColumnsObject *c, int32_t id, int how, const int32_t *entries, int32_t nentries)
{
    if (how == G_STRING) {
        return id >= 0 && id < c->str.count ? id : -1;
    }
    int32_t entry = how >= G_CODE_FUNCTION ? (id >= 0 ? entry_of(c, id) : 0) : id;
    if (entry <= 0 || entry >= nentries) {
        return -1;
    }
    if (how == G_FIRST_LINE) {
        return entry;
    }
    return entries[3 * entry + (how == G_FILE || how == G_CODE_FILE)];
}

/* gather(): row i of the column from ids[i]; 0 out of memory or too large */
static int
gather_rows(ColumnsObject *c, const int32_t *ids, Py_ssize_t n, int how, grow_t *bits,
            grow_t *off, grow_t *data, int64_t *nulls)
{
    const int32_t *entries = (const int32_t *)c->entries.p;
    int32_t nentries = (int32_t)(c->entries.len / 12);
    const int64_t *soff = (const int64_t *)c->str.offsets.p;
    size_t nbytes = (size_t)(n + 7) / 8;
    if (grow_reserve(bits, nbytes) < 0
        || grow_reserve(off, (size_t)(n + 1) * 4) < 0) { /* first: the ids, then offsets */
        return 0;
    }
    if (nbytes) { /* (no rows: bits->p may be NULL, which memset must not be given) */
        memset(bits->p, 0, nbytes);
    }
    bits->len = nbytes;
    uint8_t *valid = (uint8_t *)bits->p;
    int32_t *which = (int32_t *)off->p + 1;
    size_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t w = gather_one(c, ids[i], how, entries, nentries);
        which[i] = w;
        if (w >= 0) {
            valid[i >> 3] |= (uint8_t)(1u << (i & 7));
            if (how != G_FIRST_LINE) {
                total += (size_t)(soff[w + 1] - soff[w]);
            }
        } else {
            (*nulls)++;
        }
    }
    if (how == G_FIRST_LINE) {
        if (grow_reserve(data, (size_t)n * 4) < 0) {
            return 0;
        }
        int32_t *out = (int32_t *)data->p;
        for (Py_ssize_t i = 0; i < n; i++) {
            out[i] = which[i] >= 0 ? entries[3 * which[i] + 2] : 0;
        }
        data->len = (size_t)n * 4;
        return 1;
    }
    if (total > INT32_MAX || grow_reserve(data, total) < 0) {
        return 0;
    }
    int32_t *offsets = (int32_t *)off->p;
    char *out = data->p;
    size_t at = 0;
    offsets[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) { /* which[i] is read before offsets[i + 1] replaces it */
        int32_t w = which[i];
        if (w >= 0) {
            size_t len = (size_t)(soff[w + 1] - soff[w]);
            if (len) {
                memcpy(out + at, c->str.bytes.p + soff[w], len);
                at += len;
            }
        }
        offsets[i + 1] = (int32_t)at;
    }
    off->len = (size_t)(n + 1) * 4;
    data->len = at;
    return 1;
}

static PyObject *
columns_gather(ColumnsObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (!bt_nargs(nargs, 2, "gather(ids, how)")) {
        return NULL;
    }
    long how = PyLong_AsLong(args[1]);
    if (how == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (how < 0 || how >= G_COUNT) {
        PyErr_SetString(PyExc_ValueError, "how: 0 to 5");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    grow_t bits = {0}, off = {0}, data = {0};
    int64_t nulls = 0;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = gather_rows(c, view.buf, view.len / 4, (int)how, &bits, &off, &data, &nulls);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *out = NULL;
    if (!ok) {
        PyErr_SetString(PyExc_MemoryError, "out of memory, or a text column over 2 GiB");
    } else {
        PyObject *b = nulls ? bytes_of(&bits) : Py_NewRef(Py_None);
        PyObject *d = bytes_of(&data);
        PyObject *o = how == G_FIRST_LINE ? Py_NewRef(Py_None) : bytes_of(&off);
        if (b && d && o) {
            out = how == G_FIRST_LINE ? PyTuple_Pack(2, b, d) : PyTuple_Pack(3, b, o, d);
        }
        Py_XDECREF(b);
        Py_XDECREF(d);
        Py_XDECREF(o);
    }
    grow_free(&bits);
    grow_free(&off);
    grow_free(&data);
    return out;
}

static PyObject *
columns_function(ColumnsObject *c, PyObject *arg)
{
    long long code = PyLong_AsLongLong(arg);
    if (code == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int32_t entry = entry_of(c, code);
    if (entry == 0) {
        Py_RETURN_NONE;
    }
    size_t n;
    const uint8_t *s = str_at(&c->str, ((int32_t *)c->entries.p)[entry * 3], &n);
    return PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "strict");
}

static PyObject *
columns_take_known(ColumnsObject *c, PyObject *arg)
{
    long long next = PyLong_AsLongLong(arg);
    if (next == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *out = Py_BuildValue("(Ly#)", (long long)c->known_first, c->known.p ? c->known.p : "",
                                  (Py_ssize_t)c->known.len);
    if (out != NULL) {
        c->keep_known = 1;
        c->known_first = next;
        c->known.len = 0;
    }
    return out;
}

static PyObject *
columns_entries(ColumnsObject *c, PyObject *unused)
{
    return bytes_of(&c->entries);
}

static PyObject *
columns_code_entries(ColumnsObject *c, PyObject *unused)
{
    return bytes_of(&c->code_entry);
}

static PyObject *
columns_get(ColumnsObject *c, void *closure)
{
    switch ((int)(intptr_t)closure) {
    case 0:
        return PyLong_FromLongLong(c->rows);
    case 1:
        return PyLong_FromLongLong(c->steps);
    case 2:
        return PyLong_FromLongLong(c->calls);
    case 3:
        return PyLong_FromLongLong(c->max_depth);
    case 4:
        return PyLong_FromLongLong(c->call_rows);
    default:
        return PyLong_FromLongLong(c->exc_rows);
    }
}

static int
columns_init(ColumnsObject *c, PyObject *args, PyObject *kwds)
{
    int ops_only = 0;
    if (!PyArg_ParseTuple(args, "|p:OpColumns", &ops_only)) {
        return -1;
    }
    c->ops_only = ops_only;
    if (c->col[C_NAME_OFF].cap == 0) {
        int32_t zero = 0;
        if (grow_put(&c->col[C_NAME_OFF], &zero, 4) < 0
            || grow_put(&c->value.off.data, &zero, 4) < 0
            || grow_put(&c->message.off.data, &zero, 4) < 0) {
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
    for (int i = 0; i < C_COUNT; i++) {
        grow_free(&c->col[i]);
    }
    for (int i = 0; i < K_COUNT; i++) {
        grow_free(&c->k[i]);
    }
    for (int i = 0; i < KN_COUNT; i++) {
        grow_free(&c->kn[i].data);
        grow_free(&c->kn[i].bits);
    }
    for (int i = 0; i < E_COUNT; i++) {
        grow_free(&c->e[i]);
    }
    for (int i = 0; i < EN_COUNT; i++) {
        grow_free(&c->en[i].data);
        grow_free(&c->en[i].bits);
    }
    scol_t *texts[] = {&c->value, &c->message};
    for (int i = 0; i < 2; i++) {
        grow_free(&texts[i]->off.data);
        grow_free(&texts[i]->off.bits);
        grow_free(&texts[i]->bytes);
    }
    grow_free(&c->str.bytes);
    grow_free(&c->str.offsets);
    PyMem_RawFree(c->str.slots);
    grow_free(&c->entries);
    grow_free(&c->code_entry);
    grow_free(&c->known);
    for (size_t i = 0; i < c->nstacks; i++) {
        PyMem_RawFree(c->stacks[i].f);
    }
    PyMem_RawFree(c->stacks);
    PyMem_RawFree(c->errs);
    bt_free_instance((PyObject *)c);
}

static PyMethodDef columns_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))columns_feed, METH_FASTCALL,
     "feed($self, buffer, pos, line_no, max_rows, /)\n--\n\nAdd the op, exception, call and "
     "return lines of buffer from byte pos (line line_no) in the writer's forms; returns "
     "(stop, pos, line_no): 0 no complete line left, 1 the line at pos is for Python, 2 a "
     "table holds max_rows."},
    {"op", (PyCFunction)(void (*)(void))columns_op, METH_FASTCALL,
     "op($self, line_no, thread, depth, pc, op, opName, gas, line, code, /)\n--\n\nAn op "
     "line read by Python."},
    {"call", (PyCFunction)(void (*)(void))columns_call, METH_FASTCALL,
     "call($self, line_no, thread, depth, code, kind, name, file, first_line, clock, /)\n--\n\n"
     "A call line read by Python."},
    {"ret", (PyCFunction)(void (*)(void))columns_ret, METH_FASTCALL,
     "ret($self, line_no, thread, kind, value, clock, /)\n--\n\nA return line read by Python "
     "(value: its JSON text again)."},
    {"exception", (PyCFunction)(void (*)(void))columns_exception, METH_FASTCALL,
     "exception($self, line_no, thread, depth, pc, op, opName, line, code, event, error, "
     "clock, /)\n--\n\nAn exception line read by Python."},
    {"finish", (PyCFunction)columns_finish, METH_NOARGS,
     "finish($self, /)\n--\n\nThe calls rows of the frames that never stopped."},
    {"take", (PyCFunction)columns_take, METH_NOARGS,
     "take($self, /)\n--\n\n(rows, step, line_no, thread, depth, pc, op, opName offsets, opName data, "
     "gas, line, code) of ops as bytes (int64/int32 in machine order; Arrow buffers); "
     "empties them."},
    {"take_calls", (PyCFunction)columns_take_calls, METH_NOARGS,
     "take_calls($self, /)\n--\n\nThe calls rows held (see blocktrace/query/columns.py)."},
    {"take_exceptions", (PyCFunction)columns_take_exceptions, METH_NOARGS,
     "take_exceptions($self, /)\n--\n\nThe exceptions rows held."},
    {"strings", (PyCFunction)columns_strings, METH_O,
     "strings($self, start, /)\n--\n\nThe interned strings from number start on."},
    {"function", (PyCFunction)columns_function, METH_O,
     "function($self, code, /)\n--\n\nThe function name code number code has now, or None."},
    {"take_known", (PyCFunction)columns_take_known, METH_O,
     "take_known($self, next_line, /)\n--\n\n(first, bits): the lines feed read whole since "
     "the last call (none before the first), bit k (bits[k >> 3] >> (k & 7) & 1) for line "
     "first + k; the next map starts at line next_line.  Such a line is a JSON object msgspec "
     "accepts (ChainScan.known takes the map)."},
    {"gather", (PyCFunction)(void (*)(void))columns_gather, METH_FASTCALL,
     "gather($self, ids, how, /)\n--\n\nA column from int32 ids (machine order), as Arrow "
     "buffers: how 0 the interned strings, 1/2 the function/file of entries, 3 the first "
     "line of entries, 4/5 the function/file code numbers have now.  A negative id, entry 0 "
     "or a code without an entry is NULL.  Strings: (validity or None, int32 offsets, "
     "data); first lines: (validity or None, int32 data)."},
    {"entries", (PyCFunction)columns_entries, METH_NOARGS,
     "entries($self, /)\n--\n\n(name, file, first line) of every entry, int32 each."},
    {"code_entries", (PyCFunction)columns_code_entries, METH_NOARGS,
     "code_entries($self, /)\n--\n\nThe entry of each code number now, int32 each."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef columns_getset[] = {
    {"rows", (getter)columns_get, NULL, "ops rows held", (void *)0},
    {"steps", (getter)columns_get, NULL, "ops rows ever", (void *)1},
    {"calls", (getter)columns_get, NULL, "calls entered", (void *)2},
    {"max_depth", (getter)columns_get, NULL, "deepest call line", (void *)3},
    {"call_rows", (getter)columns_get, NULL, "calls rows held", (void *)4},
    {"exception_rows", (getter)columns_get, NULL, "exceptions rows held", (void *)5},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot columns_slots[] = {
    {Py_tp_init, columns_init},
    {Py_tp_dealloc, columns_dealloc},
    {Py_tp_methods, columns_methods},
    {Py_tp_getset, columns_getset},
    {Py_tp_doc, "OpColumns(ops_only=False, /)\n--\n\nThe ops, calls and exceptions tables' "
                "columns, filled from a trace's lines (ops_only: feed takes the plain op lines "
                "only)."},
    {0, NULL},
};

PyType_Spec columns_spec = {
    .name = "blocktrace.format._cscan.OpColumns",
    .basicsize = sizeof(ColumnsObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = columns_slots,
};

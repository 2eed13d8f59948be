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
#include <pthread.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "buffer.h"
#include "hex.h"
#include "merkle.h"
#include "sha256.h"
/* op lines are made on the writer's thread too: no glibc memcpy there (sha256.h) */
#define OPLINE_COPY(dst, src, n) sha256_copy_narrow((uint8_t *)(dst), (const uint8_t *)(src), (n))
#include "opline.h"
#include "sites.h"
#include "sink.h"

#define TAIL_HEAD SHA256_TAIL_HEAD
#define TAIL_HEAD_LEN SHA256_TAIL_HEAD_LEN
#define TAIL_LEN SHA256_TAIL_LEN /* ,"hash":"<64 hex>"}\n */

/* H_0 = SHA-256("blocktrace-chain/2\n"): the hash "before" the first line (versions 2
 * and 3). */
static const uint8_t H0[32] = {
    0xe2, 0x0d, 0xd4, 0x55, 0xf9, 0x09, 0xae, 0x5c, 0x65, 0x4b, 0x06, 0xe9, 0x68, 0xa0, 0xab, 0x97,
    0x51, 0x3b, 0x2e, 0x0e, 0xfe, 0xef, 0x6e, 0x03, 0xb8, 0xb1, 0xdf, 0x88, 0x16, 0xa2, 0x14, 0x50,
};
/* Version 4's: SHA-256("blocktrace-chain/4\n"). */
static const uint8_t H0_V4[32] = {
    0x28, 0xb9, 0x21, 0xb0, 0x95, 0x61, 0x14, 0x96, 0x52, 0xb4, 0x92, 0x20, 0x62, 0x1f, 0xa6, 0xb8,
    0x32, 0x36, 0x46, 0xb8, 0x89, 0x7e, 0x01, 0xe4, 0x45, 0x5a, 0x4f, 0x9f, 0x82, 0x4b, 0x3b, 0x48,
};

typedef struct {
    PyTypeObject *writer_type;
} module_state;

/* The version LineWriter writes unless told: blocktrace.format.versions.FORMAT_VERSION
 * (tests/chain/test_cwriter.py checks they agree; the module does not import it, as
 * msgspec, which blocktrace.format imports, loads in no subinterpreter). */
#define DEFAULT_VERSION 4

/* A leaf the thread finished: versions 2 and 3, its stream as it ended (the leaf hash is
 * its digest); version 4, the leaf hash itself (its last line's hash). */
typedef union {
    sha256_ctx stream;
    uint8_t hash[32];
} leaf_rec;

/* -- the writer's thread (threaded=True): types ------------------------------ */

/* A record in the ring: a header, then its payload, padded to 8 bytes. */
enum { REC_PAD, REC_OP, REC_OP_WIDE, REC_LINE, REC_BIG, REC_SUMMARY, REC_BIG_SUMMARY,
       REC_CLOSE_LEAF };

typedef struct {
    uint32_t kind;
    uint32_t len; /* payload bytes, before padding; REC_OP: the depth */
} rec_hdr;

typedef struct {
    PyObject *prefix, *suffix; /* bytes the site table holds: read, never counted */
    long long gas;
    long long depth; /* REC_OP_WIDE only: a REC_OP (32 bytes) stops before it */
} rec_op;

#define OP_BYTES (sizeof(rec_hdr) + offsetof(rec_op, depth))

typedef struct {
    char *data; /* malloc'd copy, freed by whoever takes the record */
    size_t len;
} rec_big;

typedef struct {
    char *buf;
    size_t len, cap;
} chunk_t;

/* Records waiting for the thread: bounded, 1 MiB (fits either core's L2).  A full
 * ring makes the program sleep until a quarter is free: one sleep and wake-up per
 * 256 KiB of records (~1,300 lines) where the program outruns the thread.  (A
 * 256 KiB ring: 550-750 a fib(20) run, each one also preempting the thread.) */
#define RING_BYTES ((size_t)1 << 20)
#define BODY_IN_RING ((size_t)1 << 16) /* longer bodies go by pointer (REC_BIG) */
#define WAKE_EVERY ((size_t)1 << 14) /* a sleeping thread is woken per this many bytes */
/* The caller publishes its head once per this many bytes of records (~17 op lines;
 * LineWriter(ring_batch=), BLOCKTRACE_RING_BATCH: 1 publishes each), and before it
 * waits for the thread: a thread that keeps up then reads head, and the ring's
 * lines, once per batch -- not right behind each record the caller is still writing,
 * which moved the head's cache line and the ring's last line between the cores per record
 * (session 13, docs/PERFORMANCE.md).  A power of two at most WAKE_EVERY. */
#define PUBLISH_EVERY ((size_t)1 << 11)
#define LAG 4 /* a chunk is handed to write when the LAG-th chunk after it closes */
#define LEAF_CAP 1024 /* leaves finished by the thread, not yet in the tree: bounded */
/* With a file of its own: closed chunks not yet written, at most (past it the thread
 * writes them itself, waiting for whoever else writes); write_after's upper bound. */
#define READY_MAX (4 * LAG)
#define WRITE_IOV 32 /* chunks per writev(2) at most */
#define WRITE_AFTER 8 /* write_after's default (docs/PERFORMANCE.md, session 14) */

/* Kept apart: what one core writes often and the other reads often shares no
 * cache line with it (a line written on one core and read on the other moves
 * between their caches each time: per record, that was a stall on both sides).
 * The structs are not 64-byte aligned (a Python object's memory is 16-byte
 * aligned), so groups are separated by GAP bytes rather than aligned. */
#define GAP 64

typedef struct {
    /* the caller's (the GIL holder's): read or written at every record it queues;
     * the thread writes none of it but failed (once, under mu) */
    int on;     /* a thread owns the chain state (the fields below are in use) */
    int forked; /* this is a fork's child: the thread is gone (see settle) */
    char *ring;  /* (the thread keeps its own copy of the pointer) */
    size_t limit;                /* the chunk's bound: the caller's copy of out.limit */
    uint64_t phead;              /* the caller's next byte */
    uint64_t published;          /* the head it last published (phead - published < batch) */
    uint64_t batch;              /* publish per this many bytes (ring_batch: PUBLISH_EVERY) */
    uint64_t tail_seen;          /* the caller's last look at tail */
    uint64_t wake_checked;       /* phead when the caller last looked whether the thread sleeps */
    uint64_t closed, taken;      /* the caller's: chunks closed by its count, handed on */
    size_t vlen;                 /* the caller's count of the thread's chunk's bytes */
    int done;                    /* the caller queued the summary */
    uint64_t lines;              /* lines queued (the caller's count) */
    int stop, drain, delivering, failed; /* under mu */
    char gap0[GAP];
    /* what the caller publishes (once per PUBLISH_EVERY bytes of records, and before
     * every wait for the thread) and the thread reads when it catches up */
    _Atomic uint64_t head;
    char gap_head[GAP];
    /* the thread's: written by it every 256 records or per batch */
    _Atomic uint64_t tail;       /* published by the thread */
    _Atomic uint64_t pushed;     /* chunks the thread closed */
    _Atomic uint64_t written;    /* with a file of its own: chunks written (write_ready) */
    _Atomic int thread_sleeps;
    long long cpu_ns; /* the thread's own CPU time, stored by it as it ends */
    _Atomic uint64_t lhead;      /* leaves the thread finished (queued in leaves) */
    char gap1[GAP];
    /* written rarely: the caller reads werr at every op line (with a file of its own),
     * the thread when it catches up; caller_waits and wake_at as one waits */
    _Atomic int werr;            /* the thread's (or the caller's) write failed with this errno */
    _Atomic int caller_waits;
    _Atomic uint64_t wake_at; /* the caller waits for tail to reach this (0: any progress) */
    /* waiting and the chunks: under the mutexes */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_mutex_t wmu; /* with a file of its own: held by whoever writes ready chunks */
    pthread_cond_t wake_thread, wake_caller;
    chunk_t *ready;                      /* FIFO (circular) of finished chunks, under mu */
    size_t ready_cap, ready_first, ready_count;
    chunk_t spare[READY_MAX + 2]; /* empty buffers to reuse */
    size_t nspare;
    line_buffer pend; /* a chunk being handed to write (without a file of its own) */
    /* The leaves the thread finished, their streams as they ended: their digests
     * (the leaf hashes) and the tree's nodes are made by whoever holds tmu, in
     * order (push_leaves) -- work off the chain, so off the thread when the
     * program's thread has time for it. */
    leaf_rec *leaves; /* LEAF_CAP of them */
    _Atomic uint64_t ltail; /* leaves pushed into the tree (under tmu) */
    pthread_mutex_t tmu;
} pipe_state;

/* A plain file the writer writes itself (fd=): its own copy of the descriptor. */
typedef struct {
    int fd;        /* -1: none (write is called) */
    int caller_fd; /* the descriptor fd is a copy of */
    dev_t dev;     /* and what it was open on */
    ino_t ino;
} own_file;

typedef struct {
    PyObject_HEAD
    PyObject *write;
    PyObject *on_leaf; /* NULL: none */
    site_table sites;  /* read by the caller at every op */
    own_file file;
    long long thread_cpu_ns; /* CPU time of the writer's threads that ended */
    int thread_ops; /* thread_ops=True: the writer's thread also makes the op bodies, writes
                     * the chunks and pushes the leaves into the tree (the program's thread
                     * only queues records) */
    size_t ring_batch;       /* the thread's ring's head is published per this many bytes */
    int thread_writes;       /* with a file of its own: the writer's thread writes each chunk
                              * as it closes it (thread_ops does too); else the program's
                              * thread writes those it finds closed where its count closes
                              * one.  Where the two threads run at once, the program's write(2)
                              * beside the thread's hashing cost both threads more than the
                              * writes themselves (session 13, docs/PERFORMANCE.md) */
    size_t write_after;      /* thread_writes: the thread writes the closed chunks once this
                              * many wait (1 to READY_MAX), in one writev(2) */
    int resume;              /* start_thread_later: start one at the next line */
    int resume_full;         /* start_thread_later(full=True): resume once the buffer fills */
    char gap0[GAP];
    /* the chain's state: with a thread on, the thread writes it at every line */
    line_buffer out;
    int done;
    int v4; /* format version 4's chain (else 2 and 3's: they differ only in the caller's
             * summary) */
    int version;
    uint64_t per_leaf, in_leaf, lines;
    uint8_t prev[32];
    sha256_ctx stream;
    /* the writer's thread, version 4: the last line's digest is left until the next
     * line's first blocks (sha256_line4_defer; prev is then the line before's); its tail
     * is at out.buf + left_tail */
    int left;
    size_t left_tail;
    merkle_tree tree;
    char gap1[GAP];
    pipe_state p;
} Writer;

/* A leaf stream before its first line: fed the one byte 0x00 (versions 2 and 3), or
 * 0x00 and the hash of the line before the leaf (version 4: w->prev). */
static void
fresh_stream(Writer *w)
{
    uint8_t head[33];
    head[0] = 0x00;
    sha256_init(&w->stream);
    if (w->v4) {
        memcpy(head + 1, w->prev, 32);
        sha256_update(&w->stream, head, sizeof head);
    }
    else {
        sha256_update(&w->stream, head, 1);
    }
}

static int
check_open(Writer *w)
{
    if (w->p.on ? w->p.done : w->done) {
        PyErr_SetString(PyExc_ValueError, "the trace is sealed: no line follows the summary");
        return -1;
    }
    return 0;
}

static int same_file(const own_file *f);
static int write_fd(int fd, line_buffer *b);
static inline void settle_left(Writer *w);

/* The inline path's flush: with a file of its own (fd=) written directly, else
 * (or once the caller's file was closed under it: its write says what is
 * wrong) handed to `write`. */
static int
flush_out(Writer *w)
{
    settle_left(w); /* the bytes leave with every line whole */
    if (w->file.fd >= 0 && w->out.len > 0 && !w->out.flushing && same_file(&w->file)) {
        int err = write_fd(w->file.fd, &w->out);
        if (err) {
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        return 0;
    }
    return buffer_flush(&w->out, w->write);
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
        if (flush_out(w) < 0) {
            return -1;
        }
        if (w->resume_full) { /* the trace filled a buffer: a thread from the next line */
            w->resume_full = 0;
            w->resume = 1;
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
    settle_left(w); /* (the inline path's op lines leave their digest too: write_op) */
    uint8_t *body = (uint8_t *)w->out.buf + w->out.len;
    uint8_t digest[32];
    if (w->v4) {
        /* every line alike (no link; the summary is an ordinary line, written with
         * line): the stream fed the body and a newline, the line's hash its digest */
        sha256_line4(&w->stream, body, blen, w->prev);
        w->out.len += blen + TAIL_LEN;
        w->lines++;
        w->in_leaf++;
        return;
    }
    if (!last && w->in_leaf != 0) {
        /* the common line: the leaf's stream fed the body, its digest, the tail
         * written and fed, in one call (the stream's last bytes are the buffer's) */
        sha256_line(&w->stream, body, blen, digest, w->out.len);
        memcpy(w->prev, digest, 32);
        w->out.len += blen + TAIL_LEN;
        w->lines++;
        w->in_leaf++;
        return;
    }
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
    uint8_t *tail = body + blen;
    sha256_tail(digest, tail);
    memcpy(w->prev, digest, 32);
    w->out.len += blen + TAIL_LEN;
    w->lines++;
    if (last) {
        w->done = 1;
    }
    else {
        sha256_update(&w->stream, tail, TAIL_LEN);
        w->in_leaf++;
    }
}

/* A finished leaf into the tree: versions 2 and 3, its stream's digest; version 4, its
 * last line's hash (already taken). */
static void
tree_push(Writer *w, const uint8_t last_hash[32], const sha256_ctx *stream)
{
    if (w->v4) {
        merkle_push(&w->tree, last_hash);
        return;
    }
    uint8_t h[32];
    sha256_digest(stream, h);
    merkle_push(&w->tree, h);
}

/* The leaf stream's digest is the leaf hash: into the tree, restart.  Cannot fail. */
static void
finish_leaf(Writer *w)
{
    settle_left(w);
    tree_push(w, w->prev, &w->stream);
    fresh_stream(w);
    w->in_leaf = 0;
}

/* The writer's thread, version 4: the left digest taken now (the line's hash into prev,
 * its tail written), before anything reads prev, the stream or the chunk.  Cannot fail. */
static inline void
settle_left(Writer *w)
{
    if (w->left) {
        sha256_line4_settle(&w->stream, (uint8_t *)w->out.buf + w->left_tail, w->prev);
        w->left = 0;
    }
}

/* commit on the writer's thread: version 4's lines leave their digest to the next line
 * (two chains at once: sha256_line4_defer), settled where prev, the stream or the chunk
 * are read (settle_left: a leaf's end, a chunk's, before the thread publishes its tail). */
static void
commit_thread(Writer *w, size_t blen, int last)
{
    if (!w->v4) {
        commit(w, blen, last);
        return;
    }
    uint8_t *body = (uint8_t *)w->out.buf + w->out.len;
    sha256_line4_defer(&w->stream, body, blen,
                       w->left ? (uint8_t *)w->out.buf + w->left_tail : NULL, w->prev);
    w->left = 1;
    w->left_tail = w->out.len + blen;
    w->out.len += blen + TAIL_LEN;
    w->lines++;
    w->in_leaf++;
}

/* The inline path's op lines (write_op) and the stepper's call and return lines
 * (api_line), version 4: the digest taken with the next line's first blocks, as on the
 * writer's thread (settled wherever the buffer, prev or the stream is read: flush_out,
 * commit, finish_leaf, synced); not inside a flush, whose loop hands the buffer's bytes
 * on as they are. */
static inline void
commit_left(Writer *w, size_t blen)
{
    if (w->v4 && !w->out.flushing) {
        commit_thread(w, blen, 0);
    }
    else {
        commit(w, blen, 0);
    }
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

/* -- the writer's thread -------------------------------------------------------------
 *
 * With threaded=True the caller (the interpreter's thread, holding the GIL) only
 * queues records -- a body (an op line's, made here by opline_write; a pre-built
 * one; a huge op line's site pieces, gas and depth); a leaf's end; the summary --
 * in a bounded ring.  A native thread that never takes the GIL and runs no Python
 * code seals the lines exactly as the inline path does (the same commit), into
 * chunks that close
 * where the inline path would flush (a line that would take the chunk past
 * buffer_size), so `write` gets the same bytes in the same pieces.  The caller hands
 * finished chunks to `write` itself, before queuing its next record (as the inline
 * path flushes before adding a line), so `write` runs where it always did: on the
 * interpreter's thread, with the GIL.
 *
 * Bounded: the ring holds RING_BYTES; a full ring makes the caller wait (handing
 * finished chunks to write meanwhile); the thread waits when MAX_READY chunks are
 * not yet taken, unless the caller cannot take them (it is inside write, or waits
 * for the thread to catch up: drain) -- then it keeps them, as the inline buffer
 * grows for lines added during a flush.
 *
 * The thread does what must be serial (the leaf streams); a finished leaf's
 * stream goes to a bounded queue whose hashes and tree nodes whoever gets there
 * makes, in order (push_leaves).
 *
 * Reading the chain's state (head, root, tree size, the buffered bytes), flush,
 * dropping sites, a fork and stopping the thread first wait until the thread has
 * made every queued line (drain).  A fork's child has no thread: its first call
 * goes on inline from the drained state (settle).  A SIGKILL or os._exit loses the
 * records not yet written, as it loses the inline buffer -- the ring's records, the
 * thread's open chunk and, while the thread is busy, up to write_after closed chunks
 * (with a file of its own) --; what went to the file is a prefix of whole chunks. */

static inline size_t
rec_size(uint32_t len)
{
    return sizeof(rec_hdr) + (((size_t)len + 7) & ~(size_t)7);
}

static inline size_t
rec_bytes(const rec_hdr *r)
{
    return r->kind == REC_OP ? OP_BYTES : rec_size(r->len);
}

/* Every record queued so far to the thread: before anything that waits for the thread
 * to make them (a drain, a full ring, a chunk due to write) or wakes it. */
static inline void
publish_head(pipe_state *p)
{
    if (p->published != p->phead) {
        p->published = p->phead;
        atomic_store_explicit(&p->head, p->phead, memory_order_release);
    }
}

/* Write all of b to fd (no GIL needed, no Python code); what went is dropped
 * from b.  0, or the errno of a failed write (the rest stays in b). */
static int
write_fd(int fd, line_buffer *b)
{
    size_t done = 0;
    int err = 0;
    while (done < b->len) {
        ssize_t n = write(fd, b->buf + done, b->len - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            err = errno;
            break;
        }
        if (n == 0) {
            err = EIO;
            break;
        }
        done += (size_t)n;
    }
    if (done < b->len) { /* (only then: glibc's memmove is 512-bit code, even for no bytes) */
        memmove(b->buf, b->buf + done, b->len - done);
    }
    b->len -= done;
    return err;
}

/* The thread: room for a line of `total` bytes in its chunk, closing the chunk
 * first where the inline path would flush (writing it, with a file of its own).
 * -1: out of memory. */
static int thread_room(Writer *w, size_t total);

/* Hold m: wait for it, or (!wait) only if it is free.  0: held, -1: not. */
static inline int
hold(pthread_mutex_t *m, int wait)
{
    if (wait) {
        pthread_mutex_lock(m);
        return 0;
    }
    return pthread_mutex_trylock(m) == 0 ? 0 : -1;
}

static inline int
leaves_waiting(pipe_state *p)
{
    return atomic_load_explicit(&p->lhead, memory_order_relaxed)
           != atomic_load_explicit(&p->ltail, memory_order_relaxed);
}

/* The finished leaves' hashes into the tree, in order, by whoever holds tmu (the
 * program's thread where a chunk closes, while it waits for room and before the
 * tree is read; the thread only when LEAF_CAP wait).  wait: block
 * until the other thread is done (else return at once when it is at it). */
static void
push_leaves(Writer *w, int wait)
{
    pipe_state *p = &w->p;
    if (hold(&p->tmu, wait) < 0) {
        return;
    }
    uint64_t t = atomic_load_explicit(&p->ltail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&p->lhead, memory_order_acquire);
    for (; t != h; t++) {
        leaf_rec *r = &p->leaves[t & (LEAF_CAP - 1)];
        tree_push(w, r->hash, &r->stream);
    }
    atomic_store_explicit(&p->ltail, t, memory_order_release);
    pthread_mutex_unlock(&p->tmu);
}

/* The thread's finish_leaf: the stream as it ended (version 4: the leaf hash) to the
 * leaves' queue (when that is full, this thread makes room itself), a fresh stream. */
static void
thread_finish_leaf(Writer *w)
{
    pipe_state *p = &w->p;
    settle_left(w); /* version 4: the leaf hash is its last line's */
    uint64_t h = atomic_load_explicit(&p->lhead, memory_order_relaxed);
    if (h - atomic_load_explicit(&p->ltail, memory_order_acquire) >= LEAF_CAP) {
        push_leaves(w, 1);
    }
    if (w->v4) {
        memcpy(p->leaves[h & (LEAF_CAP - 1)].hash, w->prev, 32);
    }
    else {
        p->leaves[h & (LEAF_CAP - 1)].stream = w->stream;
    }
    atomic_store_explicit(&p->lhead, h + 1, memory_order_release);
    if (w->thread_ops) { /* the program's thread leaves the tree to this one */
        push_leaves(w, 0);
    }
    fresh_stream(w);
    w->in_leaf = 0;
}

static int
thread_line(Writer *w, const char *body, size_t blen, int last)
{
    if (last && w->per_leaf && w->in_leaf) {
        thread_finish_leaf(w);
    }
    if (thread_room(w, blen + TAIL_LEN) < 0) {
        return -1;
    }
    /* not memcpy: see sha256_copy_narrow */
    sha256_copy_narrow((uint8_t *)w->out.buf + w->out.len, (const uint8_t *)body, blen);
    commit_thread(w, blen, last);
    if (!last && w->per_leaf && w->in_leaf == w->per_leaf) {
        thread_finish_leaf(w);
    }
    return 0;
}

/* Make the record's line(s); -1: out of memory (the record is not consumed). */
static int
thread_record(Writer *w, const rec_hdr *r)
{
    const char *payload = (const char *)(r + 1);
    switch (r->kind) {
    case REC_OP:
    case REC_OP_WIDE: {
        const rec_op *o = (const rec_op *)payload;
        size_t plen = (size_t)PyBytes_GET_SIZE(o->prefix);
        size_t slen = (size_t)PyBytes_GET_SIZE(o->suffix);
        long long depth = r->kind == REC_OP ? (long long)r->len : o->depth;
        opline_layout l;
        opline_measure(&l, plen, o->gas, depth, slen);
        if (thread_room(w, l.len + TAIL_LEN) < 0) {
            return -1;
        }
        opline_write(w->out.buf + w->out.len, &l, PyBytes_AS_STRING(o->prefix), plen,
                     PyBytes_AS_STRING(o->suffix), slen);
        commit_thread(w, l.len, 0);
        if (w->per_leaf && w->in_leaf == w->per_leaf) {
            thread_finish_leaf(w);
        }
        return 0;
    }
    case REC_LINE:
    case REC_SUMMARY:
        return thread_line(w, payload, r->len, r->kind == REC_SUMMARY);
    case REC_BIG:
    case REC_BIG_SUMMARY: {
        const rec_big *b = (const rec_big *)payload;
        if (thread_line(w, b->data, b->len, r->kind == REC_BIG_SUMMARY) < 0) {
            return -1;
        }
        free(b->data);
        return 0;
    }
    case REC_CLOSE_LEAF:
        if (w->per_leaf && w->in_leaf) {
            thread_finish_leaf(w);
        }
        return 0;
    default: /* REC_PAD */
        return 0;
    }
}

/* Under mu: a chunk buffer for the thread to fill (a spare, or an empty one). */
static void
take_spare(pipe_state *p, line_buffer *out)
{
    if (p->nspare > 0) {
        chunk_t c = p->spare[--p->nspare];
        out->buf = c.buf;
        out->cap = c.cap;
    }
    else {
        out->buf = NULL;
        out->cap = 0;
    }
    out->len = 0;
}

/* Under mu: keep an emptied buffer for reuse, or free it. */
static void
give_spare(pipe_state *p, char *buf, size_t cap)
{
    if (buf == NULL) {
        return;
    }
    if (p->nspare < READY_MAX + 2) {
        p->spare[p->nspare].buf = buf;
        p->spare[p->nspare].cap = cap;
        p->spare[p->nspare].len = 0;
        p->nspare++;
    }
    else {
        free(buf);
    }
}

/* Under mu: the thread's chunk (out) to the back of the ready FIFO; out gets a
 * fresh buffer.  -1: out of memory (nothing changed). */
static int
push_ready(Writer *w)
{
    pipe_state *p = &w->p;
    if (p->ready_count == p->ready_cap) {
        size_t ncap = p->ready_cap ? p->ready_cap * 2 : 8;
        chunk_t *nr = malloc(ncap * sizeof(chunk_t));
        if (nr == NULL) {
            return -1;
        }
        for (size_t i = 0; i < p->ready_count; i++) {
            nr[i] = p->ready[(p->ready_first + i) % p->ready_cap];
        }
        free(p->ready);
        p->ready = nr;
        p->ready_cap = ncap;
        p->ready_first = 0;
    }
    chunk_t *c = &p->ready[(p->ready_first + p->ready_count) % p->ready_cap];
    c->buf = w->out.buf;
    c->len = w->out.len;
    c->cap = w->out.cap;
    p->ready_count++;
    atomic_store(&p->pushed, atomic_load(&p->pushed) + 1);
    take_spare(p, &w->out);
    return 0;
}

/* Under mu: the oldest ready chunk becomes pend (whose emptied buffer is kept). */
static void
take_ready(pipe_state *p)
{
    chunk_t c = p->ready[p->ready_first];
    p->ready_first = (p->ready_first + 1) % p->ready_cap;
    p->ready_count--;
    give_spare(p, p->pend.buf, p->pend.cap);
    p->pend.buf = c.buf;
    p->pend.len = c.len;
    p->pend.cap = c.cap;
}

/* With a file of its own: write the ready chunks, oldest first, to the end (or
 * the first failed write: its errno goes to werr, the bytes not written stay at the
 * front of the ready FIFO), up to WRITE_IOV of them per writev(2).  Whoever holds wmu
 * writes, so the chunks go in order whichever thread writes them: the writer's
 * thread once write_after of them wait (WRITE_AFTER, 8, by default; 1: each as it
 * closes it; thread_writes), when READY_MAX wait (bounded memory) or before it sleeps; the
 * program's thread while it waits for room, before reading the chain's state and
 * (thread_writes=False) where a chunk closes by its count.  Only a wmu holder takes
 * chunks off the FIFO's front (the thread only appends, under mu), so the chunks
 * noted under mu stay where they are while they are written without it.
 * wait: block until the other thread is done writing (else return at once). */
static void
write_ready(Writer *w, int wait)
{
    pipe_state *p = &w->p;
    if (hold(&p->wmu, wait) < 0) {
        return;
    }
    while (!atomic_load(&p->werr)) {
        struct iovec iov[WRITE_IOV];
        size_t n = 0;
        pthread_mutex_lock(&p->mu);
        for (; n < p->ready_count && n < WRITE_IOV; n++) {
            chunk_t *c = &p->ready[(p->ready_first + n) % p->ready_cap];
            iov[n].iov_base = c->buf;
            iov[n].iov_len = c->len;
        }
        pthread_mutex_unlock(&p->mu);
        if (n == 0) {
            break;
        }
        ssize_t got = writev(w->file.fd, iov, (int)n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) { /* the bytes stay; the caller sees it at its next call */
            atomic_store(&p->werr, got < 0 ? errno : EIO);
            break;
        }
        /* what went, off the front: whole chunks to the spares, a partly written one
         * keeps its rest (only then: glibc's memmove is 512-bit code) */
        size_t left = (size_t)got;
        pthread_mutex_lock(&p->mu);
        while (left > 0) {
            chunk_t *c = &p->ready[p->ready_first];
            if (left < c->len) {
                memmove(c->buf, c->buf + left, c->len - left);
                c->len -= left;
                break;
            }
            left -= c->len;
            p->ready_first = (p->ready_first + 1) % p->ready_cap;
            p->ready_count--;
            give_spare(p, c->buf, c->cap);
            atomic_fetch_add(&p->written, 1);
        }
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->wmu);
}

static int
thread_room(Writer *w, size_t total)
{
    pipe_state *p = &w->p;
    if (w->out.len > 0 && w->out.len + total > w->out.limit) {
        settle_left(w); /* the chunk leaves with every line whole */
        pthread_mutex_lock(&p->mu);
        int rc = push_ready(w);
        if (w->file.fd < 0 && atomic_load(&p->caller_waits)) {
            pthread_cond_signal(&p->wake_caller);
        }
        size_t ready = p->ready_count;
        pthread_mutex_unlock(&p->mu);
        if (rc < 0) {
            return -1;
        }
        if (w->file.fd >= 0 && ready > READY_MAX) { /* nobody else took them */
            write_ready(w, 1);
        }
        else if (w->file.fd >= 0 && (w->thread_ops || w->thread_writes)
                 && ready >= w->write_after) {
            /* the program's thread leaves them here: once write_after wait, in one writev */
            write_ready(w, 0);
        }
    }
    if (total > PY_SSIZE_T_MAX - w->out.len) {
        return -1;
    }
    size_t need = w->out.len + total;
    if (w->out.cap == 0 && need < w->out.limit) {
        /* a new chunk's buffer at once as large as a chunk grows (up to 1 MiB), not
         * doubled from 256 bytes: realloc's copies are glibc's memcpy (see sha256.h) */
        need = w->out.limit < ((size_t)1 << 20) ? w->out.limit : ((size_t)1 << 20);
        need = need > w->out.len + total ? need : w->out.len + total;
    }
    return buffer_grow_raw(&w->out, need);
}

/* Wake the caller if it waits (for room, for a drain, for chunks) and the tail
 * `t` just stored is where it waits for (wake_at: one wake-up per wait, not one
 * per 256 records -- each a system call, and an interrupt to a sleeping core). */
static void
wake_caller(pipe_state *p, uint64_t t)
{
    /* the tail just stored, then the flag read: a store-load pair needs the fence
     * (the caller sets the flag, then reads the tail) */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&p->caller_waits) && t >= atomic_load_explicit(&p->wake_at,
                                                                   memory_order_relaxed)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->wake_caller);
        pthread_mutex_unlock(&p->mu);
    }
}

/* The calling thread's CPU time so far, in ns (0 when the clock is missing). */
static long long
own_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        return 0;
    }
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *
thread_main(void *arg)
{
    Writer *w = arg;
    pipe_state *p = &w->p;
    /* Signals go to the program's threads, never here: a signal this thread took
     * would not interrupt the main thread's sleep or read (Ctrl-C would wait). */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    const char *ring = p->ring; /* not read from the caller's lines per record */
    uint64_t t = atomic_load(&p->tail);
    for (;;) {
        uint64_t h = atomic_load_explicit(&p->head, memory_order_acquire);
        if (t == h && w->file.fd >= 0 && !atomic_load(&p->werr)
            && atomic_load(&p->pushed) != atomic_load(&p->written)) {
            write_ready(w, 1); /* idle: what is closed goes to the file now */
            continue;
        }
        if (t == h) {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->thread_sleeps, 1);
            while (!p->stop && atomic_load(&p->head) == t) {
                if (atomic_load(&p->caller_waits)) {
                    pthread_cond_signal(&p->wake_caller); /* a drain is done */
                }
                pthread_cond_wait(&p->wake_thread, &p->mu);
            }
            atomic_store(&p->thread_sleeps, 0);
            int stop = p->stop;
            pthread_mutex_unlock(&p->mu);
            if (stop) {
                p->cpu_ns = own_cpu_ns(); /* read by end_thread after the join */
                return NULL;
            }
            continue;
        }
        unsigned k = 0;
        while (t != h) {
            const rec_hdr *r = (const rec_hdr *)(ring + (t & (RING_BYTES - 1)));
            if (thread_record(w, r) < 0) {
                settle_left(w);
                pthread_mutex_lock(&p->mu);
                p->failed = 1;
                pthread_cond_signal(&p->wake_caller);
                pthread_mutex_unlock(&p->mu);
                atomic_store_explicit(&p->tail, t, memory_order_release);
                p->cpu_ns = own_cpu_ns();
                return NULL;
            }
            t += rec_bytes(r);
            if ((++k & 255) == 0) {
                settle_left(w); /* what the caller may read once it sees the tail */
                atomic_store_explicit(&p->tail, t, memory_order_release);
                wake_caller(p, t);
            }
        }
        settle_left(w);
        atomic_store_explicit(&p->tail, t, memory_order_release);
        wake_caller(p, t);
    }
}

static int
thread_failed(pipe_state *p)
{
    PyErr_SetString(PyExc_MemoryError, "the trace's writer thread ran out of memory");
    return -1;
}

/* Hand the finished chunks up to number `target` (1-based, in closing order) to
 * write, oldest first, waiting for the thread to close them; then the bytes of a
 * partly written one.  Not re-entrant: a nested call (code that write ran)
 * returns at once.  On an exception the unwritten bytes stay, in order. */
static int
deliver_to(Writer *w, uint64_t target)
{
    pipe_state *p = &w->p;
    if (p->delivering) {
        return 0;
    }
    if (target > p->closed) {
        target = p->closed;
    }
    p->delivering = 1;
    int rc = 0;
    for (;;) {
        if (p->pend.len == 0) {
            if (p->taken >= target) {
                break;
            }
            pthread_mutex_lock(&p->mu);
            if (p->ready_count == 0) {
                /* wait for the thread; until it caught up with what is closed (fewer waits) */
                publish_head(p);
                atomic_store(&p->caller_waits, 1);
                pthread_cond_signal(&p->wake_thread);
                while (!p->failed && atomic_load(&p->pushed) < p->closed) {
                    pthread_cond_wait(&p->wake_caller, &p->mu);
                }
                atomic_store(&p->caller_waits, 0);
                if (p->failed) {
                    pthread_mutex_unlock(&p->mu);
                    rc = thread_failed(p);
                    break;
                }
            }
            take_ready(p);
            p->taken++;
            pthread_mutex_unlock(&p->mu);
        }
        if (buffer_flush(&p->pend, w->write) < 0) {
            rc = -1;
            break;
        }
    }
    p->delivering = 0;
    return rc;
}

/* The caller's count of the thread's chunk: a line of `total` bytes closes the
 * chunk where the thread will close it (thread_room's rule).  Before queuing the
 * line: 1 when it closes one and a chunk is due to write first. */
static inline int
closes_due(const pipe_state *p, size_t total, size_t limit)
{
    return p->vlen > 0 && p->vlen + total > limit && p->closed + 1 > p->taken + LAG;
}

static inline void
count_line(pipe_state *p, size_t total, size_t limit)
{
    if (p->vlen > 0 && p->vlen + total > limit) {
        p->closed++;
        p->vlen = total;
    }
    else {
        p->vlen += total;
    }
}

/* Wait (holding the GIL: no other thread may queue meanwhile) until the thread
 * has made every queued line.  Runs no Python code.  -1 when the thread failed
 * (no exception set: see drain). */
static int
drain_quiet(pipe_state *p)
{
    publish_head(p);
    pthread_mutex_lock(&p->mu);
    p->drain++;
    pthread_cond_signal(&p->wake_thread);
    atomic_store_explicit(&p->wake_at, p->phead, memory_order_relaxed);
    atomic_store(&p->caller_waits, 1);
    while (!p->failed && atomic_load(&p->tail) != p->phead) {
        pthread_cond_wait(&p->wake_caller, &p->mu);
    }
    atomic_store(&p->caller_waits, 0);
    atomic_store_explicit(&p->wake_at, 0, memory_order_relaxed);
    p->drain--;
    int failed = p->failed;
    pthread_mutex_unlock(&p->mu);
    return failed ? -1 : 0;
}

static int
drain(Writer *w)
{
    if (drain_quiet(&w->p) < 0) {
        return thread_failed(&w->p);
    }
    return 0;
}

static void end_thread(Writer *w);
static inline int resume_due(Writer *w);

/* With a file of its own: whether the caller's descriptor is still open on the
 * same file (closed under the trace, it is the inline path's write that fails,
 * as it would have without the thread). */
static int
same_file(const own_file *f)
{
    struct stat st;
    return fstat(f->caller_fd, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino;
}

/* The thread's write failed, or the caller's file is gone: every queued line is
 * made, then the writer goes on inline, the bytes not written its buffer, so
 * that `write` (the inline path's) tries them and says what is wrong, as it would
 * have without the thread. */
static void
go_inline(Writer *w)
{
    (void)drain_quiet(&w->p);
    end_thread(w);
}

/* Contiguous room for a record of `size` bytes at the ring's head, waiting while
 * the ring is full (for the thread only: no Python code runs).  Returns where
 * to write. */
static rec_hdr *
claim(Writer *w, size_t size)
{
    pipe_state *p = &w->p;
    int wrote = 0;
    for (;;) {
        if (p->failed) {
            thread_failed(p);
            return NULL;
        }
        size_t at = (size_t)(p->phead & (RING_BYTES - 1));
        size_t pad = RING_BYTES - at < size ? RING_BYTES - at : 0;
        if (RING_BYTES - (size_t)(p->phead - p->tail_seen) < pad + size) {
            p->tail_seen = atomic_load_explicit(&p->tail, memory_order_acquire);
        }
        if (RING_BYTES - (size_t)(p->phead - p->tail_seen) >= pad + size) {
            if (pad) {
                rec_hdr *h = (rec_hdr *)(p->ring + at);
                h->kind = REC_PAD;
                h->len = (uint32_t)(pad - sizeof(rec_hdr));
                p->phead += pad; /* published with the record */
            }
            return (rec_hdr *)(p->ring + (p->phead & (RING_BYTES - 1)));
        }
        /* Full: write what the thread closed meanwhile (with a file of its own), then
         * wait until a quarter is free (fewer wake-ups). */
        publish_head(p);
        if (!wrote && leaves_waiting(p)) {
            push_leaves(w, 0);
        }
        if (w->file.fd >= 0 && !wrote && !atomic_load(&p->werr)
            && atomic_load(&p->pushed) != atomic_load(&p->written)) {
            wrote = 1;
            write_ready(w, 0);
            continue;
        }
        size_t want = pad + size > RING_BYTES / 4 ? pad + size : RING_BYTES / 4;
        pthread_mutex_lock(&p->mu);
        atomic_store_explicit(&p->wake_at, p->phead + want - RING_BYTES, memory_order_relaxed);
        atomic_store(&p->caller_waits, 1);
        pthread_cond_signal(&p->wake_thread);
        while (!p->failed && RING_BYTES - (size_t)(p->phead - atomic_load(&p->tail)) < want) {
            pthread_cond_wait(&p->wake_caller, &p->mu);
        }
        atomic_store(&p->caller_waits, 0);
        atomic_store_explicit(&p->wake_at, 0, memory_order_relaxed);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Queue the record claimed at r (payload written): published with the batch it
 * completes (PUBLISH_EVERY); wake the thread when it sleeps and there is enough to do. */
static void
publish(Writer *w, rec_hdr *r)
{
    pipe_state *p = &w->p;
    p->phead += rec_bytes(r);
    if (p->phead - p->published < p->batch) {
        return;
    }
    publish_head(p);
    /* A sleeping thread is woken once enough waits (fewer wake-ups): checked
     * every WAKE_EVERY bytes, without a fence -- a wake missed here only
     * delays the lines; whoever waits for the thread (drain, claim, deliver_to)
     * always publishes the head and wakes it under the mutex. */
    if (p->phead - p->wake_checked >= WAKE_EVERY) {
        p->wake_checked = p->phead;
        if (atomic_load_explicit(&p->thread_sleeps, memory_order_relaxed)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->wake_thread);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* Before queuing a line of `total` bytes that closes a chunk: hand the chunk due
 * to write (Python code runs).  0: go on; 2: code ran, look at the state again;
 * 1: that code stopped the thread (go on inline); -1: error. */
static int
hand_due(Writer *w, size_t total)
{
    pipe_state *p = &w->p;
    if (p->vlen > 0 && p->vlen + total > p->limit && leaves_waiting(p) && !w->thread_ops) {
        push_leaves(w, 0); /* this thread's share: the leaves the thread finished */
    }
    if (w->file.fd >= 0) {
        /* at the points the inline path would write: is the file still there? */
        int closes = p->vlen > 0 && p->vlen + total > p->limit;
        if (atomic_load_explicit(&p->werr, memory_order_relaxed)
            || (closes && !same_file(&w->file))) {
            go_inline(w);
            return 1;
        }
        if (closes && !w->thread_ops && !w->thread_writes
            && atomic_load_explicit(&p->pushed, memory_order_relaxed)
                   != atomic_load_explicit(&p->written, memory_order_relaxed)) {
            write_ready(w, 0); /* this thread's share: the chunks the thread closed */
        }
        return 0;
    }
    if (p->delivering || !closes_due(p, total, p->limit)) {
        return 0;
    }
    if (deliver_to(w, p->closed + 1 - LAG) < 0) {
        return -1;
    }
    if (!p->on) {
        return 1;
    }
    return check_open(w) < 0 ? -1 : 2;
}

/* Queue a body (line or summary): 0, 1 the thread is gone (go on inline), -1. */
static int
queue_body(Writer *w, const char *body, size_t blen, int summary)
{
    pipe_state *p = &w->p;
    int d;
    while ((d = hand_due(w, blen + TAIL_LEN)) == 2) {
    }
    if (d != 0) {
        return d;
    }
    char *copy = NULL;
    if (blen > BODY_IN_RING) {
        copy = malloc(blen);
        if (copy == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, body, blen);
    }
    rec_hdr *r = claim(w, rec_size(copy ? (uint32_t)sizeof(rec_big) : (uint32_t)blen));
    if (r == NULL) {
        free(copy);
        return -1;
    }
    if (copy == NULL) {
        r->kind = summary ? REC_SUMMARY : REC_LINE;
        r->len = (uint32_t)blen;
        memcpy(r + 1, body, blen);
    }
    else {
        r->kind = summary ? REC_BIG_SUMMARY : REC_BIG;
        r->len = sizeof(rec_big);
        rec_big *b = (rec_big *)(r + 1);
        b->data = copy;
        b->len = blen;
    }
    publish(w, r);
    count_line(p, blen + TAIL_LEN, p->limit);
    p->lines++;
    if (summary) {
        p->done = 1;
    }
    return 0;
}

static int
queue_close_leaf(Writer *w)
{
    rec_hdr *r = claim(w, rec_size(0));
    if (r == NULL) {
        return -1;
    }
    r->kind = REC_CLOSE_LEAF;
    r->len = 0;
    publish(w, r);
    return 0;
}

/* An op line's record: 1 queued, 0 the event has no site, 2 the thread is
 * gone (go on inline), -1 error. */
static int
queue_op(Writer *w, PyObject *event, long long gas, long long depth)
{
    pipe_state *p = &w->p;
    for (;;) {
        site_t *s = site_find(&w->sites, (uintptr_t)event);
        if (s == NULL) {
            return 0;
        }
        opline_layout l;
        opline_measure(&l, (size_t)PyBytes_GET_SIZE(s->prefix), gas, depth,
                       (size_t)PyBytes_GET_SIZE(s->suffix));
        size_t total = l.len + TAIL_LEN;
        int d = hand_due(w, total);
        if (d == 2) {
            continue; /* the site may be gone */
        }
        if (d != 0) {
            return d < 0 ? -1 : 2;
        }
        rec_hdr *r;
        if (l.len <= BODY_IN_RING && !w->thread_ops) {
            /* the body made here, into the ring: the thread copies it to its chunk
             * and seals it (its share is what must be serial: the hash chain) */
            r = claim(w, rec_size((uint32_t)l.len));
            if (r == NULL) {
                return -1;
            }
            r->kind = REC_LINE;
            r->len = (uint32_t)l.len;
            opline_write((char *)(r + 1), &l, PyBytes_AS_STRING(s->prefix),
                         (size_t)PyBytes_GET_SIZE(s->prefix), PyBytes_AS_STRING(s->suffix),
                         (size_t)PyBytes_GET_SIZE(s->suffix));
            publish(w, r);
            count_line(p, total, p->limit);
            p->lines++;
            return 1;
        }
        /* a body longer than a quarter of the ring (or thread_ops): the site's pieces, made
         * by the thread */
        int narrow = depth >= 0 && depth <= (long long)UINT32_MAX;
        r = claim(w, narrow ? OP_BYTES : rec_size(sizeof(rec_op)));
        if (r == NULL) {
            return -1;
        }
        rec_op *o = (rec_op *)(r + 1);
        o->prefix = s->prefix;
        o->suffix = s->suffix;
        o->gas = gas;
        if (narrow) {
            r->kind = REC_OP;
            r->len = (uint32_t)depth;
        }
        else {
            r->kind = REC_OP_WIDE;
            r->len = sizeof(rec_op);
            o->depth = depth;
        }
        publish(w, r);
        count_line(p, total, p->limit);
        p->lines++;
        return 1;
    }
}

/* Every queued line made and the closed chunks handed to write; with `all`, the
 * thread's partial chunk too (a flush). */
static int
thread_flush(Writer *w, int all)
{
    pipe_state *p = &w->p;
    if (drain(w) < 0) {
        return -1;
    }
    if (w->file.fd >= 0) { /* the closed chunks, then the rest from here */
        write_ready(w, 1);
        if (atomic_load(&p->werr) || (all && w->out.len > 0 && !same_file(&w->file))) {
            go_inline(w); /* the caller goes on with the inline path's flush */
            return 1;
        }
        int err = all ? write_fd(w->file.fd, &w->out) : 0;
        if (err) {
            atomic_store(&p->werr, err);
            go_inline(w);
            return 1;
        }
        return 0;
    }
    if (all && w->out.len > 0) {
        pthread_mutex_lock(&p->mu);
        int rc = push_ready(w);
        pthread_mutex_unlock(&p->mu);
        if (rc < 0) {
            PyErr_NoMemory();
            return -1;
        }
        p->closed++;
        p->vlen = 0;
    }
    return deliver_to(w, p->closed);
}

/* -- starting, stopping, fork ------------------------------------------------- */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static Writer **registry; /* the writers with a thread, for a fork */
static size_t registry_len, registry_cap;

static int
registry_add(Writer *w)
{
    pthread_mutex_lock(&registry_mu);
    if (registry_len == registry_cap) {
        size_t ncap = registry_cap ? registry_cap * 2 : 8;
        Writer **nr = realloc(registry, ncap * sizeof(Writer *));
        if (nr == NULL) {
            pthread_mutex_unlock(&registry_mu);
            return -1;
        }
        registry = nr;
        registry_cap = ncap;
    }
    registry[registry_len++] = w;
    pthread_mutex_unlock(&registry_mu);
    return 0;
}

static void
registry_remove(Writer *w)
{
    pthread_mutex_lock(&registry_mu);
    for (size_t i = 0; i < registry_len; i++) {
        if (registry[i] == w) {
            registry[i] = registry[--registry_len];
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);
}

/* Before fork(): every thread has made its queued lines and sleeps, and (with a
 * file of its own) what it closed is written; the registry stays locked until after. */
static void
atfork_prepare(void)
{
    pthread_mutex_lock(&registry_mu);
    for (size_t i = 0; i < registry_len; i++) {
        if (!registry[i]->p.forked) {
            (void)drain_quiet(&registry[i]->p);
            push_leaves(registry[i], 1); /* no leaf half pushed in the child */
            if (registry[i]->file.fd >= 0) {
                write_ready(registry[i], 1); /* the child inherits no closed chunk unwritten */
            }
        }
    }
}

static void
atfork_parent(void)
{
    pthread_mutex_unlock(&registry_mu);
}

/* In the child: no thread.  Each writer goes on inline at its next call. */
static void
atfork_child(void)
{
    for (size_t i = 0; i < registry_len; i++) {
        pipe_state *p = &registry[i]->p;
        p->forked = 1;
        pthread_mutex_init(&p->mu, NULL);
        pthread_mutex_init(&p->wmu, NULL);
        pthread_mutex_init(&p->tmu, NULL);
        pthread_cond_init(&p->wake_thread, NULL);
        pthread_cond_init(&p->wake_caller, NULL);
        p->delivering = 0;
        p->drain = 0;
    }
    registry_len = 0;
    pthread_mutex_init(&registry_mu, NULL);
}

/* Undo start_thread's allocations and initialisations (it could not start one). */
static void
unstart(pipe_state *p)
{
    free(p->ring);
    p->ring = NULL;
    free(p->leaves);
    p->leaves = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->wmu);
    pthread_mutex_destroy(&p->tmu);
    pthread_cond_destroy(&p->wake_thread);
    pthread_cond_destroy(&p->wake_caller);
}

static int
start_thread(Writer *w)
{
    pipe_state *p = &w->p;
    memset(p, 0, sizeof *p);
    p->ring = malloc(RING_BYTES);
    p->leaves = malloc(LEAF_CAP * sizeof(leaf_rec));
    if (p->ring == NULL || p->leaves == NULL) {
        free(p->ring);
        free(p->leaves);
        p->ring = NULL;
        p->leaves = NULL;
        PyErr_NoMemory();
        return -1;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->wmu, NULL);
    pthread_mutex_init(&p->tmu, NULL);
    pthread_cond_init(&p->wake_thread, NULL);
    pthread_cond_init(&p->wake_caller, NULL);
    p->pend.limit = w->out.limit;
    p->limit = w->out.limit;
    p->batch = w->ring_batch;
    p->lines = w->lines; /* (a thread started again: the count goes on) */
    if (registry_add(w) < 0) {
        unstart(p);
        PyErr_NoMemory();
        return -1;
    }
    p->on = 1; /* before the thread reads anything */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread starts with signals blocked */
    int err = pthread_create(&p->thread, NULL, thread_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        p->on = 0;
        registry_remove(w);
        unstart(p);
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Free what records between tail and head own (a thread stopped early). */
static void
free_queued(pipe_state *p)
{
    uint64_t t = atomic_load(&p->tail);
    while (t != p->phead) {
        const rec_hdr *r = (const rec_hdr *)(p->ring + (t & (RING_BYTES - 1)));
        if (r->kind == REC_BIG || r->kind == REC_BIG_SUMMARY) {
            free(((const rec_big *)(r + 1))->data);
        }
        t += rec_bytes(r);
    }
}

/* End the thread (after a drain, or dropping what is queued); the writer goes
 * on inline: the bytes not yet written -- the chunk being written, the finished
 * ones, the thread's partial one -- become the inline buffer, in order. */
static void
end_thread(Writer *w)
{
    pipe_state *p = &w->p;
    if (!p->on) {
        return;
    }
    if (!p->forked) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_signal(&p->wake_thread);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL); /* it never takes the GIL */
        registry_remove(w);
        w->thread_cpu_ns += p->cpu_ns;
    }
    free_queued(p);
    push_leaves(w, 1); /* the tree complete for the inline path */
    free(p->leaves);
    /* one buffer: pend, then ready in order, then out */
    size_t total = p->pend.len + w->out.len;
    for (size_t i = 0; i < p->ready_count; i++) {
        total += p->ready[(p->ready_first + i) % p->ready_cap].len;
    }
    line_buffer all = {NULL, 0, 0, w->out.limit, 0};
    int ok = total == 0 || buffer_grow_raw(&all, total) == 0;
    if (ok) {
        /* memcpy of nothing from a buffer never allocated (NULL) is undefined in C */
        if (p->pend.len) {
            memcpy(all.buf, p->pend.buf, p->pend.len);
        }
        all.len = p->pend.len;
        for (size_t i = 0; i < p->ready_count; i++) {
            chunk_t *c = &p->ready[(p->ready_first + i) % p->ready_cap];
            if (c->len) {
                memcpy(all.buf + all.len, c->buf, c->len);
            }
            all.len += c->len;
        }
        if (w->out.len) {
            memcpy(all.buf + all.len, w->out.buf, w->out.len);
        }
        all.len += w->out.len;
    }
    for (size_t i = 0; i < p->ready_count; i++) {
        free(p->ready[(p->ready_first + i) % p->ready_cap].buf);
    }
    for (size_t i = 0; i < p->nspare; i++) {
        free(p->spare[i].buf);
    }
    free(p->ready);
    free(p->pend.buf);
    free(p->ring);
    free(w->out.buf);
    w->out = ok ? all : (line_buffer){NULL, 0, 0, w->out.limit, 0};
    if (!p->forked) {
        pthread_mutex_destroy(&p->mu);
        pthread_mutex_destroy(&p->wmu);
        pthread_mutex_destroy(&p->tmu);
        pthread_cond_destroy(&p->wake_thread);
        pthread_cond_destroy(&p->wake_caller);
    }
    memset(p, 0, sizeof *p);
}

/* At every call while a thread is on: in a fork's child, go on inline. */
static inline void
settle(Writer *w)
{
    if (w->p.forked) {
        end_thread(w);
    }
}

/* Before reading the chain's state: every queued line made. */
static int
synced(Writer *w)
{
    if (w->p.on) {
        settle(w);
    }
    if (!w->p.on) {
        settle_left(w); /* the inline path's last op line's digest */
        return 0;
    }
    if (drain(w) < 0) {
        return -1;
    }
    push_leaves(w, 1); /* the tree is read next */
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

/* With the thread on, queue the body: 1 done, -1 error (the view released
 * then), 0 go on inline. */
static int
thread_body(Writer *w, Py_buffer *view, int summary)
{
    if (w->p.on) {
        settle(w);
    }
    if (!w->p.on) {
        return 0;
    }
    int rc = queue_body(w, view->buf, (size_t)view->len, summary);
    if (rc > 0) {
        return 0;
    }
    PyBuffer_Release(view);
    return rc < 0 ? -1 : 1;
}

/* A body from C (the sink api's line: the stepper's call hook): as writer_line. */
static int
api_line(PyObject *self, const char *body, size_t blen)
{
    Writer *w = (Writer *)self;
    if (check_open(w) < 0 || resume_due(w) < 0) {
        return -1;
    }
    if (memchr(body, '\n', blen) != NULL) {
        PyErr_SetString(PyExc_ValueError, "a line body cannot contain a newline");
        return -1;
    }
    if (w->p.on) {
        settle(w);
    }
    if (w->p.on) {
        int rc = queue_body(w, body, blen, 0);
        if (rc <= 0) {
            return rc;
        } /* 1: go on inline */
    }
    if (prepare(w, blen + TAIL_LEN) < 0) {
        return -1;
    }
    memcpy(w->out.buf + w->out.len, body, blen);
    commit_left(w, blen);
    PyObject *r = after_line(w);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static PyObject *
writer_line(Writer *w, PyObject *arg)
{
    Py_buffer view;
    if (check_open(w) < 0 || resume_due(w) < 0 || get_body(arg, &view) < 0) {
        return NULL;
    }
    size_t blen = (size_t)view.len;
    int queued = thread_body(w, &view, 0);
    if (queued != 0) {
        return queued < 0 ? NULL : Py_NewRef(Py_None);
    }
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
    if (w->v4) {
        PyErr_SetString(PyExc_ValueError,
                        "version 4 has no summary rule of its own: write it as a line");
        return NULL;
    }
    if (check_open(w) < 0 || get_body(arg, &view) < 0) {
        return NULL;
    }
    size_t blen = (size_t)view.len;
    int queued = thread_body(w, &view, 1);
    if (queued != 0) {
        return queued < 0 ? NULL : Py_NewRef(Py_None);
    }
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
    if (w->p.on) {
        settle(w);
    }
    if (w->p.on) {
        int rc = queue_close_leaf(w);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 0) {
            Py_RETURN_NONE;
        }
    }
    if (close_leaf_impl(w) < 0) { /* after the summary there is no partial leaf */
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
writer_flush(Writer *w, PyObject *Py_UNUSED(ignored))
{
    if (w->p.on) {
        settle(w);
    }
    if (w->p.on) {
        int rc = thread_flush(w, 1);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 0) {
            Py_RETURN_NONE;
        } /* 1: gone inline: the inline flush below */
    }
    if (flush_out(w) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
writer_root(Writer *w, PyObject *Py_UNUSED(ignored))
{
    if (synced(w) < 0) {
        return NULL;
    }
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
    /* queued op lines read the pieces a replacement drops */
    if (w->p.on && site_find(&w->sites, (uintptr_t)k) != NULL && synced(w) < 0) {
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
    if (synced(w) < 0) { /* queued op lines read the pieces */
        return NULL;
    }
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
    commit_left(w, l.len);
    Py_DECREF(pref);
    Py_DECREF(suff);
    return 1;
}

/* The op line of event's site with these gas and depth (the sink api's op):
 * 1 written, 0 the event has no site (nothing written), -1 error. */
static int
api_op(PyObject *self, PyObject *event, long long gas, long long depth)
{
    Writer *w = (Writer *)self;
    if (check_open(w) < 0 || resume_due(w) < 0) {
        return -1;
    }
    if (w->p.on) {
        settle(w);
    }
    if (w->p.on) {
        int queued = queue_op(w, event, gas, depth);
        if (queued < 2) {
            return queued;
        }
    }
    int written = write_op(w, event, gas, depth);
    if (written <= 0) {
        return written;
    }
    PyObject *r = after_line(w);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
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
    int done = api_op((PyObject *)w, args[0], v[0], v[1]);
    if (done < 0) {
        return NULL;
    }
    return Py_NewRef(done ? Py_True : Py_False);
}

/* The stepper's hooks call op and line through this (events/csrc/sink.h). */
static const bt_sink_api writer_sink = {
    .op_meth = (PyCFunction)(void (*)(void))writer_op,
    .op = api_op,
    .line_meth = (PyCFunction)writer_line,
    .line = api_line,
    .call = NULL,
    .ret = NULL,
};

/* -- the type ---------------------------------------------------------------------- */

static PyObject *
writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"write", "buffer_size", "lines_per_leaf", "on_leaf", "threaded",
                             "fd", "version", "thread_ops", "ring_batch", "thread_writes",
                             "write_after", NULL};
    PyObject *write, *on_leaf = Py_None;
    Py_ssize_t buffer_size = 65536, per_leaf = 16, ring_batch = -1, write_after = -1;
    int threaded = 0, fd = -1, version = DEFAULT_VERSION, thread_ops = 0, thread_writes = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$nnOpiipnin:LineWriter", kwlist, &write,
                                     &buffer_size, &per_leaf, &on_leaf, &threaded, &fd,
                                     &version, &thread_ops, &ring_batch, &thread_writes,
                                     &write_after)) {
        return NULL;
    }
    if (thread_writes < 0) { /* BLOCKTRACE_WRITER_WRITES=0: as before session 13 (an A/B) */
        const char *env = getenv("BLOCKTRACE_WRITER_WRITES");
        thread_writes = !(env != NULL && strcmp(env, "0") == 0);
    }
    if (ring_batch == -1) { /* BLOCKTRACE_RING_BATCH: for an A/B in one run (a benchmark's) */
        const char *env = getenv("BLOCKTRACE_RING_BATCH");
        char *end = NULL;
        long v = env != NULL ? strtol(env, &end, 10) : 0;
        ring_batch = env != NULL && *env && *end == 0 && v >= 1 && v <= (long)WAKE_EVERY
                         ? (Py_ssize_t)v : (Py_ssize_t)PUBLISH_EVERY;
    }
    if (write_after == -1) { /* BLOCKTRACE_WRITE_AFTER: for an A/B in one run */
        const char *env = getenv("BLOCKTRACE_WRITE_AFTER");
        char *end = NULL;
        long v = env != NULL ? strtol(env, &end, 10) : 0;
        write_after = env != NULL && *env && *end == 0 && v >= 1 && v <= READY_MAX
                          ? (Py_ssize_t)v : WRITE_AFTER;
    }
    if (write_after < 1 || write_after > READY_MAX) {
        PyErr_Format(PyExc_ValueError, "LineWriter(): write_after must be 1 to %d chunks",
                     READY_MAX);
        return NULL;
    }
    if (ring_batch < 1 || ring_batch > (Py_ssize_t)WAKE_EVERY) {
        PyErr_Format(PyExc_ValueError, "LineWriter(): ring_batch must be 1 to %zu bytes",
                     WAKE_EVERY);
        return NULL;
    }
    if (version < 2 || version > 4) {
        PyErr_Format(PyExc_ValueError, "LineWriter(): version %d is not one this writer "
                     "writes (2, 3 or 4)", version);
        return NULL;
    }
    if (threaded && on_leaf != Py_None) {
        PyErr_SetString(PyExc_ValueError,
                        "LineWriter(): on_leaf runs Python code after each leaf: not with threaded");
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
    w->file.fd = -1;
    w->write = Py_NewRef(write);
    w->on_leaf = on_leaf == Py_None ? NULL : Py_NewRef(on_leaf);
    w->out.buf = NULL;
    w->out.len = w->out.cap = 0;
    w->out.limit = (size_t)buffer_size;
    w->out.flushing = 0;
    w->done = 0;
    w->per_leaf = (uint64_t)per_leaf;
    w->in_leaf = w->lines = 0;
    w->version = version;
    w->v4 = version >= 4;
    w->thread_ops = thread_ops;
    w->ring_batch = (size_t)ring_batch;
    w->thread_writes = thread_writes != 0;
    w->write_after = (size_t)write_after;
    memcpy(w->prev, w->v4 ? H0_V4 : H0, 32);
    fresh_stream(w);
    merkle_init(&w->tree);
    w->sites.slots = NULL;
    w->sites.mask = w->sites.count = 0;
    memset(&w->p, 0, sizeof w->p);
    w->file.fd = -1;
    w->file.caller_fd = -1;
    if (fd >= 0) { /* its own descriptor: the caller's may be closed, its number reused */
        struct stat st;
        if (fstat(fd, &st) < 0 || (w->file.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            Py_DECREF(w);
            return NULL;
        }
        w->file.caller_fd = fd;
        w->file.dev = st.st_dev;
        w->file.ino = st.st_ino;
    }
    if (threaded && start_thread(w) < 0) {
        Py_DECREF(w);
        return NULL;
    }
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
    end_thread(w); /* queued op lines read the sites' pieces */
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
    if (w->file.fd >= 0) {
        close(w->file.fd);
        w->file.fd = -1;
    }
    free(w->out.buf);
    w->out.buf = NULL;
    type->tp_free((PyObject *)w);
    Py_DECREF(type); /* instances of a heap type own a reference to it */
}

static PyObject *
writer_get_head(Writer *w, void *Py_UNUSED(closure))
{
    if (synced(w) < 0) {
        return NULL;
    }
    char hex[64];
    hex32(w->prev, hex);
    return PyUnicode_FromStringAndSize(hex, 64);
}

static PyObject *
writer_get_lines(Writer *w, void *Py_UNUSED(closure))
{
    if (w->p.on) {
        return PyLong_FromUnsignedLongLong(w->p.lines);
    }
    return PyLong_FromUnsignedLongLong(w->lines);
}

static PyObject *
writer_get_tree_size(Writer *w, void *Py_UNUSED(closure))
{
    if (synced(w) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(w->tree.size);
}

static PyObject *
writer_get_buffered(Writer *w, void *Py_UNUSED(closure))
{
    if (synced(w) < 0) {
        return NULL;
    }
    size_t n = w->out.len;
    if (w->p.on) {
        if (w->file.fd >= 0) {
            write_ready(w, 1); /* as the thread did before it wrote only where it closed them */
        }
        pthread_mutex_lock(&w->p.mu);
        n += w->p.pend.len;
        for (size_t i = 0; i < w->p.ready_count; i++) {
            n += w->p.ready[(w->p.ready_first + i) % w->p.ready_cap].len;
        }
        pthread_mutex_unlock(&w->p.mu);
    }
    return PyLong_FromSize_t(n);
}

static PyObject *
writer_get_version(Writer *w, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(w->version);
}

static PyObject *
writer_get_threaded(Writer *w, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(w->p.on && !w->p.forked);
}

static PyObject *
writer_get_thread_cpu_ns(Writer *w, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(w->thread_cpu_ns);
}

static PyObject *
writer_stop_thread(Writer *w, PyObject *Py_UNUSED(ignored))
{
    w->resume = w->resume_full = 0; /* a start_thread_later before: inline it is */
    /* the finished chunks go to write first: the inline buffer then holds what
     * the inline path would (the lines since the last flush point) */
    if (w->p.on && w->p.delivering) {
        /* another thread of the program is inside write, with a chunk of ours: the
         * thread stays (it ends with the writer) */
        Py_RETURN_NONE;
    }
    if (synced(w) < 0 || (w->p.on && thread_flush(w, 0) < 0)) { /* 1: gone inline */
        return NULL;
    }
    end_thread(w);
    if (w->file.fd >= 0) { /* from now on write says what went (a size limit counts it) */
        close(w->file.fd);
        w->file.fd = -1;
    }
    Py_RETURN_NONE;
}

/* Its own copy of the caller's descriptor again (start_thread after stop_thread closed
 * it), when the caller's is still open on the same file.  -1: errno set. */
static int
own_file_again(own_file *f)
{
    if (f->fd >= 0 || f->caller_fd < 0 || !same_file(f)) {
        return 0;
    }
    f->fd = fcntl(f->caller_fd, F_DUPFD_CLOEXEC, 0);
    return f->fd < 0 ? -1 : 0;
}

/* Start the thread again from the chain's state (after stop_thread): 0 (a thread
 * runs, or the writer stays inline) or -1 with an exception.  quiet: at a line, where
 * no Python code may run and nothing may fail that the line would not have: a buffer
 * only `write` could take, a descriptor or thread that cannot be had, keep the writer
 * inline (only a failed write of its own file is raised, as the line's flush would). */
static int
restart(Writer *w, int quiet)
{
    w->resume = w->resume_full = 0;
    if (w->p.on || w->done || w->on_leaf != NULL) {
        return 0;
    }
    if (own_file_again(&w->file) < 0) {
        if (quiet) {
            return 0;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    /* the thread starts from an empty buffer: the caller's count of its chunks and
     * the points `write` is called at begin there */
    if (w->out.len > 0) {
        if (quiet && !(w->file.fd >= 0 && same_file(&w->file))) {
            return 0;
        }
        if (flush_out(w) < 0) {
            return -1;
        }
        if (w->out.len > 0 || w->done) { /* write ran code that added lines or sealed */
            return 0;
        }
    }
    if (start_thread(w) < 0) {
        if (quiet) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    return 0;
}

/* At a line: the thread start_thread_later asked for. */
static inline int
resume_due(Writer *w)
{
    return w->resume ? restart(w, 1) : 0;
}

static PyObject *
writer_start_thread(Writer *w, PyObject *Py_UNUSED(ignored))
{
    if (w->p.on) {
        settle(w); /* a fork's child: the thread is gone, go on inline (and stay) */
        Py_RETURN_NONE;
    }
    if (restart(w, 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
writer_start_thread_later(Writer *w, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"full", NULL};
    int full = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$p:start_thread_later", kwlist, &full)) {
        return NULL;
    }
    if (!w->p.on) {
        if (full) {
            w->resume_full = 1;
        }
        else {
            w->resume = 1;
        }
    }
    Py_RETURN_NONE;
}

static PyGetSetDef writer_getset[] = {
    {"head", (getter)writer_get_head, NULL, "Hex of the last line's hash (of H_0 before any line).",
     NULL},
    {"lines", (getter)writer_get_lines, NULL, "Lines sealed so far (the summary included).", NULL},
    {"tree_size", (getter)writer_get_tree_size, NULL, "Leaves in the Merkle tree so far.", NULL},
    {"buffered", (getter)writer_get_buffered, NULL, "Bytes not yet handed to write.", NULL},
    {"version", (getter)writer_get_version, NULL,
     "The format version whose chain the writer writes (2 and 3 share one).", NULL},
    {"threaded", (getter)writer_get_threaded, NULL,
     "Whether a thread of the writer makes the lines (threaded=True, until stop_thread).", NULL},
    {"thread_cpu_ns", (getter)writer_get_thread_cpu_ns, NULL,
     "CPU time (ns) the writer's thread used, once it ended (0 until then; for benchmarks).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef writer_methods[] = {
    {"line", (PyCFunction)writer_line, METH_O,
     "line($self, body, /)\n--\n\nSeal and buffer one line of the tree; body is the line up to its hash "
     "member."},
    {"summary", (PyCFunction)writer_summary, METH_O,
     "summary($self, body, /)\n--\n\nSeal and buffer the summary line; nothing may follow it.  "
     "Version 2's rule (a partial leaf closed first, the summary in link form, not in the tree); "
     "ValueError in version 4, whose summary is an ordinary line (line, then close_leaf)."},
    {"close_leaf", (PyCFunction)writer_close_leaf, METH_NOARGS,
     "close_leaf($self, /)\n--\n\nEnd a partial leaf now (no-op if none)."},
    {"flush", (PyCFunction)writer_flush, METH_NOARGS,
     "flush($self, /)\n--\n\nHand every buffered byte to write (not re-entrantly)."},
    {"root", (PyCFunction)writer_root, METH_NOARGS,
     "root($self, /)\n--\n\nThe RFC 9162 root of the leaves so far (SHA-256 of b'' for none)."},
    {"add_site", (PyCFunction)(void (*)(void))writer_add_site, METH_FASTCALL,
     "add_site($self, key, prefix, suffix, keep, /)\n--\n\nThe pieces of an instruction site's op line, "
     "for events whose id() is key; keep (the event) is held so the id stays valid."},
    {"start_thread", (PyCFunction)writer_start_thread, METH_NOARGS,
     "start_thread($self, /)\n--\n\nGo on with a thread making the lines again, from the "
     "chain's state now (after stop_thread; the buffer is flushed first).  No-op while one "
     "runs, in a fork's child, after the summary, or with on_leaf."},
    {"start_thread_later", (PyCFunction)(void (*)(void))writer_start_thread_later,
     METH_VARARGS | METH_KEYWORDS,
     "start_thread_later($self, /, *, full=False)\n--\n\nstart_thread at the next line (op, "
     "line), where it runs no Python code: a buffer only write could take, or a thread that "
     "cannot be started, keeps the writer inline.  (After os.fork: the parent's thread starts "
     "once os.fork has returned, after Python's check for threads.)  full: at the first line "
     "after the buffer is next handed on because it is full (a trace shorter than one buffer "
     "never starts a thread)."},
    {"stop_thread", (PyCFunction)writer_stop_thread, METH_NOARGS,
     "stop_thread($self, /)\n--\n\nLet the writer's thread make every queued line, hand "
     "its finished chunks on, end it and go on inline, through write (not fd)."},
    {"clear_sites", (PyCFunction)writer_clear_sites, METH_NOARGS,
     "clear_sites($self, /)\n--\n\nForget every site."},
    {"op", (PyCFunction)(void (*)(void))writer_op, METH_FASTCALL,
     "op($self, event, gas, depth, /)\n--\n\nThe op line of event's site with this gas and "
     "depth: True when written; False (nothing written) when event has no site, or gas or "
     "depth is not an int that fits 64 bits."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(writer_doc,
"LineWriter(write, *, buffer_size=65536, lines_per_leaf=16, on_leaf=None, threaded=False,\n"
"           fd=-1, version=FORMAT_VERSION, thread_ops=False, ring_batch=2048,\n"
"           thread_writes=True, write_after=8)\n"
"--\n\n"
"Seal lines per docs/FORMAT.md (version's chain: 2 and 3 share one, 4), buffer them\n"
"and hand them to write;\n"
"keep the Merkle tree of the leaves.  op(event, gas, depth) writes the op line of\n"
"a site added with add_site from those plain values.  threaded: the calls only\n"
"queue records; a thread of the writer (no GIL) makes, hashes and buffers the\n"
"lines, and the calls hand finished buffers to write: the same bytes.  With fd\n"
"(write's file descriptor), the thread writes them there itself (write is used\n"
"only once the thread is stopped, or after a failed write).  thread_ops: the\n"
"thread also makes each op line's body from the site's pieces, gas and depth (the\n"
"calls queue those 32 bytes instead of the body), writes the chunks it closes and\n"
"pushes the leaves into the tree: less work on the program's thread, more on the\n"
"writer's -- which is faster depends on which thread bounds the run.  ring_batch:\n"
"the calls publish their records to the thread once per this many bytes (1 to\n"
"16384; 1: per record), and before every wait for it: the same bytes (default:\n"
"BLOCKTRACE_RING_BATCH, else 2048).  thread_writes (with fd): the thread writes\n"
"the chunks it closes, the calls none where their count closes one (default:\n"
"True unless BLOCKTRACE_WRITER_WRITES=0); write_after: the thread lets this many\n"
"closed chunks wait (1 to 16) and writes them in one writev, or at once when it\n"
"has nothing else to do; the calls write those waiting when they would wait for\n"
"room (default: BLOCKTRACE_WRITE_AFTER, else 8; 1: each as it closes it).");

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

/* lines4_with(name, how, prev, bodies): one version 4 leaf stream through the line
 * function under test (sha256.h sha256_line4_named, sha256_line4_defer_named), for
 * tests.  how: "composed", "fused", "deferred" (composed), "deferred-fused". */
static PyObject *
mod_lines4_with(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])
        || !PyBytes_Check(args[2]) || PyBytes_GET_SIZE(args[2]) != 32 || !PyList_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "lines4_with(name: str, how: str, prev: bytes (32), bodies: list)");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(args[0]);
    const char *how = PyUnicode_AsUTF8(args[1]);
    sha256_compress_fn compress;
    if (name == NULL || how == NULL) {
        return NULL;
    }
    int fused = strcmp(how, "fused") == 0 || strcmp(how, "deferred-fused") == 0;
    int deferred = strncmp(how, "deferred", 8) == 0;
    if (!fused && !deferred && strcmp(how, "composed") != 0) {
        PyErr_Format(PyExc_ValueError, "lines4_with(): no way %R", args[1]);
        return NULL;
    }
    if (!sha256_compress_named(name, &compress)) {
        PyErr_Format(PyExc_ValueError, "no SHA-256 compression %R in this process", args[0]);
        return NULL;
    }
    sha256_ctx c;
    uint8_t head[33], digest[32];
    head[0] = 0x00;
    memcpy(head + 1, PyBytes_AS_STRING(args[2]), 32);
    sha256_init(&c);
    sha256_update_with(&c, head, sizeof head, compress);
    line_buffer out = {NULL, 0, 0, 0, 0};
    size_t left = 0; /* deferred: the tail whose digest is left, +1 (0: none) */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(args[3]); i++) {
        PyObject *body = PyList_GET_ITEM(args[3], i);
        if (!PyBytes_Check(body)) {
            free(out.buf);
            PyErr_SetString(PyExc_TypeError, "lines4_with(): bodies must be bytes");
            return NULL;
        }
        size_t blen = (size_t)PyBytes_GET_SIZE(body);
        if (buffer_grow_raw(&out, out.len + blen + TAIL_LEN) < 0) {
            free(out.buf);
            return PyErr_NoMemory();
        }
        memcpy(out.buf + out.len, PyBytes_AS_STRING(body), blen);
        uint8_t *at = (uint8_t *)out.buf + out.len;
        int ok = deferred ? sha256_line4_defer_named(name, fused, &c, at, blen,
                                                     left ? (uint8_t *)out.buf + left - 1 : NULL,
                                                     digest)
                          : sha256_line4_named(name, fused, &c, at, blen, digest);
        if (!ok) {
            free(out.buf);
            PyErr_Format(PyExc_ValueError, "no fused line function for %R", args[0]);
            return NULL;
        }
        out.len += blen + TAIL_LEN;
        left = out.len - TAIL_LEN + 1;
    }
    if (deferred && left) {
        (void)sha256_line4_defer_named(name, fused, &c, NULL, 0, (uint8_t *)out.buf + left - 1,
                                       digest);
    }
    PyObject *r = PyBytes_FromStringAndSize(out.buf, (Py_ssize_t)out.len);
    free(out.buf);
    return r;
}

static PyMethodDef module_methods[] = {
    {"lines4_with", (PyCFunction)(void (*)(void))mod_lines4_with, METH_FASTCALL,
     "lines4_with(name, how, prev, bodies, /)\n--\n\nFor tests: the version 4 lines of "
     "bodies in one leaf stream after prev, with the compression called name through the "
     "streaming calls (how \"composed\"; \"deferred\": each digest taken with the next "
     "line) or its own line function (\"fused\", \"deferred-fused\": \"sha-ni\" only); "
     "ValueError when this process has no such one."},
    {"sha256_with", (PyCFunction)(void (*)(void))mod_sha256_with, METH_FASTCALL,
     "sha256_with(name, data, /)\n--\n\nFor tests: SHA-256 of data with the compression "
     "called name (\"sha-ni\", \"openssl\", \"portable\"); ValueError when this process "
     "cannot use it."},
    {"sha256", mod_sha256, METH_O,
     "sha256(data, /)\n--\n\nSHA-256 of a bytes-like object, with this module's implementation."},
    {"hash_lines", (PyCFunction)(void (*)(void))bench_hash_lines, METH_FASTCALL,
     "hash_lines(body, count, per_leaf, use_hashlib, version=0, deferred=False, /)\n--\n\nFor benchmarks: CPU ns to hash "
     "count lines of body as the writer does (per-leaf streams), with this module's SHA-256 or "
     "with hashlib's, called from C."},
    {NULL, NULL, 0, NULL},
};

static int
cwriter_exec(PyObject *m)
{
    static int atfork_registered;
    if (!atfork_registered) { /* the handlers never run Python code */
        if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
            return -1;
        }
        atfork_registered = 1;
    }
    module_state *st = PyModule_GetState(m);
    const char *impl = sha256_select_from_env();
    st->writer_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &writer_spec, NULL);
    if (st->writer_type == NULL) {
        return -1;
    }
    PyObject *api = PyCapsule_New((void *)&writer_sink, BT_SINK_CAPSULE, NULL);
    PyObject *dict = api == NULL ? NULL : PyType_GetDict(st->writer_type);
    int added = dict == NULL ? -1 : PyDict_SetItemString(dict, "_sink_api", api);
    Py_XDECREF(dict);
    Py_XDECREF(api);
    if (added < 0) {
        return -1;
    }
    PyType_Modified(st->writer_type);
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

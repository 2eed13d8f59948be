/* _cwriter.hash_lines(): the writer's per-line hashing alone, with our SHA-256 or
 * with OpenSSL's through hashlib, for benchmarks/bench_cwriter.py: is our own
 * SHA-256 worth keeping at trace line sizes? */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"
#include "sha256.h"

static long long
cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* What the writer does per line with its own SHA-256: feed the body to the leaf's
 * stream, take the digest (the stream goes on), feed the 76-byte tail; a new
 * stream every per_leaf lines. */
static long long
own_lines(const uint8_t *body, size_t len, long long count, long long per_leaf, uint8_t *sink)
{
    static const uint8_t zero = 0x00;
    uint8_t tail[76], digest[32];
    memset(tail, 'a', sizeof tail);
    sha256_ctx stream;
    long long start = cpu_ns();
    sha256_init(&stream);
    sha256_update(&stream, &zero, 1);
    for (long long i = 0; i < count; i++) {
        sha256_update(&stream, body, len);
        sha256_digest(&stream, digest);
        sha256_update(&stream, tail, sizeof tail);
        sink[0] ^= digest[0];
        if ((i + 1) % per_leaf == 0) {
            sha256_digest(&stream, digest);
            sink[0] ^= digest[0];
            sha256_init(&stream);
            sha256_update(&stream, &zero, 1);
        }
    }
    return cpu_ns() - start;
}

/* What the writer's commit does per line, with the line function the writer uses:
 * version 3, sha256_line (the body fed, its digest, the tail written and fed; a leaf's
 * first line's link hash is left out); version 4, sha256_line4 (the body and a newline
 * fed, its digest, the tail written); a new stream every per_leaf lines (version 4:
 * started with the last line's hash, which is the leaf hash). */
static long long
writer_lines(const uint8_t *body, size_t len, long long count, long long per_leaf, int version,
             int deferred, uint8_t *sink)
{
    size_t line = len + SHA256_TAIL_LEN, cap = line > 32768 ? 2 * line : 65536;
    uint8_t *buf = malloc(cap);
    uint8_t digest[32] = {0}, head[33] = {0};
    if (buf == NULL) {
        return -1;
    }
    sha256_ctx stream;
    size_t at = 0; /* lines follow each other in a 64 KiB chunk, as in the writer's */
    uint8_t *left = NULL; /* deferred: the tail whose digest is left */
    long long start = cpu_ns();
    sha256_init(&stream);
    sha256_update(&stream, head, version == 4 ? 33 : 1);
    for (long long i = 0; i < count; i++) {
        if (at + line > cap) {
            if (left != NULL) { /* a chunk closes: its last line settled */
                sha256_line4_settle(&stream, left, digest);
                left = NULL;
            }
            at = 0;
        }
        uint8_t *p = buf + at;
        sha256_copy_narrow(p, body, len);
        if (deferred) {
            sha256_line4_defer(&stream, p, len, left, digest);
            left = p + len;
        }
        else if (version == 4) {
            sha256_line4(&stream, p, len, digest);
        }
        else {
            sha256_line(&stream, p, len, digest, at);
        }
        at += line;
        sink[0] ^= digest[0];
        if ((i + 1) % per_leaf == 0) {
            if (left != NULL) { /* the leaf hash is its last line's */
                sha256_line4_settle(&stream, left, digest);
                left = NULL;
            }
            sha256_init(&stream);
            if (version == 4) {
                memcpy(head + 1, digest, 32);
                sha256_update(&stream, head, 33);
            }
            else {
                sha256_digest(&stream, digest);
                sink[0] ^= digest[0];
                sha256_update(&stream, head, 1);
            }
        }
    }
    long long ns = cpu_ns() - start;
    free(buf);
    return ns;
}

/* The same with hashlib's sha256 objects (OpenSSL), called from C as the writer
 * would call them: update(body), copy().digest(), update(tail). */
static long long
hashlib_lines(PyObject *body, long long count, long long per_leaf)
{
    PyObject *hashlib = PyImport_ImportModule("hashlib");
    if (hashlib == NULL) {
        return -1;
    }
    PyObject *ctor = PyObject_GetAttrString(hashlib, "sha256");
    Py_DECREF(hashlib);
    PyObject *zero = PyBytes_FromStringAndSize("\0", 1);
    PyObject *tail = PyBytes_FromStringAndSize(NULL, 76);
    PyObject *s_update = PyUnicode_InternFromString("update");
    PyObject *s_copy = PyUnicode_InternFromString("copy");
    PyObject *s_digest = PyUnicode_InternFromString("digest");
    long long elapsed = -1;
    PyObject *stream = NULL;
    if (ctor == NULL || zero == NULL || tail == NULL || s_update == NULL || s_copy == NULL
        || s_digest == NULL) {
        goto done;
    }
    memset(PyBytes_AS_STRING(tail), 'a', 76);
    long long start = cpu_ns();
    stream = PyObject_CallOneArg(ctor, zero);
    for (long long i = 0; stream != NULL && i < count; i++) {
        PyObject *r = PyObject_CallMethodOneArg(stream, s_update, body);
        if (r == NULL) {
            goto done;
        }
        Py_DECREF(r);
        PyObject *copy = PyObject_CallMethodNoArgs(stream, s_copy);
        if (copy == NULL) {
            goto done;
        }
        PyObject *digest = PyObject_CallMethodNoArgs(copy, s_digest);
        Py_DECREF(copy);
        if (digest == NULL) {
            goto done;
        }
        Py_DECREF(digest);
        r = PyObject_CallMethodOneArg(stream, s_update, tail);
        if (r == NULL) {
            goto done;
        }
        Py_DECREF(r);
        if ((i + 1) % per_leaf == 0) {
            digest = PyObject_CallMethodNoArgs(stream, s_digest);
            if (digest == NULL) {
                goto done;
            }
            Py_DECREF(digest);
            Py_SETREF(stream, PyObject_CallOneArg(ctor, zero));
        }
    }
    if (stream != NULL) {
        elapsed = cpu_ns() - start;
    }
done:
    Py_XDECREF(stream);
    Py_XDECREF(ctor);
    Py_XDECREF(zero);
    Py_XDECREF(tail);
    Py_XDECREF(s_update);
    Py_XDECREF(s_copy);
    Py_XDECREF(s_digest);
    return elapsed;
}

PyObject *
bench_hash_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 4 || nargs > 6 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hash_lines(body: bytes, count, per_leaf, "
                        "use_hashlib, version=0, deferred=False)");
        return NULL;
    }
    long long version = nargs >= 5 ? PyLong_AsLongLong(args[4]) : 0;
    int deferred = nargs == 6 ? PyObject_IsTrue(args[5]) : 0;
    if ((version == -1 && PyErr_Occurred()) || deferred < 0) {
        return NULL;
    }
    if (deferred && version != 4) {
        PyErr_SetString(PyExc_ValueError, "hash_lines(): deferred digests are version 4's");
        return NULL;
    }
    long long count = PyLong_AsLongLong(args[1]);
    long long per_leaf = PyLong_AsLongLong(args[2]);
    int use_hashlib = PyObject_IsTrue(args[3]);
    if ((count == -1 || per_leaf == -1 || use_hashlib < 0) && PyErr_Occurred()) {
        return NULL;
    }
    if (count < 0 || per_leaf < 1) {
        PyErr_SetString(PyExc_ValueError, "count >= 0 and per_leaf >= 1");
        return NULL;
    }
    long long ns;
    if (use_hashlib) {
        ns = hashlib_lines(args[0], count, per_leaf);
        if (ns < 0) {
            return NULL;
        }
    }
    else if (version == 3 || version == 4) {
        uint8_t sink[1] = {0};
        ns = writer_lines((const uint8_t *)PyBytes_AS_STRING(args[0]),
                          (size_t)PyBytes_GET_SIZE(args[0]), count, per_leaf, (int)version,
                          deferred, sink);
        if (ns < 0) {
            return PyErr_NoMemory();
        }
        if (sink[0] == 0xFF) {
            ns++;
        }
    }
    else {
        uint8_t sink[1] = {0};
        ns = own_lines((const uint8_t *)PyBytes_AS_STRING(args[0]),
                       (size_t)PyBytes_GET_SIZE(args[0]), count, per_leaf, sink);
        if (sink[0] == 0xFF) { /* keep the digests observable */
            ns++;
        }
    }
    return PyLong_FromLongLong(ns);
}

/* Benchmark helpers of _cwriter (bench.c). */

#ifndef BT_BENCH_H
#define BT_BENCH_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* hash_lines(body, count, per_leaf, use_hashlib, version=0) -> CPU ns (version 0: the
 * streaming calls' composition; 3 and 4: the writer's line function of that version) */
PyObject *bench_hash_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif /* BT_BENCH_H */

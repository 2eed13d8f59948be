/* The writer's output buffer and its flush to the `write` callable.
 *
 * A flush is not re-entrant: a nested call (from code that `write` ran)
 * returns at once, and lines added meanwhile go behind the bytes being
 * written.  On an exception the unwritten bytes stay buffered. */

#ifndef BT_BUFFER_H
#define BT_BUFFER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    char *buf;
    size_t len, cap;
    size_t limit;  /* flush before a line that would take len past it */
    int flushing;
} line_buffer;

/* Hand every buffered byte to write(bytes); 0, or -1 with its exception. */
int buffer_flush(line_buffer *b, PyObject *write);

/* Room for need bytes in all (len included); -1 with MemoryError.  The
 * memory is the C library's (malloc/realloc; free with free), not PyMem_Raw's:
 * the writer's thread grows buffers without the GIL, and tracemalloc's hooks
 * on the PyMem_Raw allocators take the GIL (a deadlock with a caller that holds
 * it while it waits for that thread). */
int buffer_reserve(line_buffer *b, size_t need);

/* As buffer_reserve, without the GIL: -1 and no exception when out of memory. */
int buffer_grow_raw(line_buffer *b, size_t need);

#endif /* BT_BUFFER_H */

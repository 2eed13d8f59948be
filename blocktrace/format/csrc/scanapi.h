/* The chain scanner's entry points for other extensions (blocktrace.format._cscan), handed
 * over in a capsule: a reader that walks a plain trace's lines itself (the golden
 * comparison's byte pass, blocktrace/eip3155/csrc/skip.c) has them hashed as it goes, so
 * the file is read once for both, by the one scanner (scan.c) and its rules.
 *
 *     const BtScanAPI *api = PyCapsule_Import(BT_SCAN_API_NAME, 0);
 */
#ifndef BLOCKTRACE_SCANAPI_H
#define BLOCKTRACE_SCANAPI_H

#include <Python.h>
#include <stdint.h>

#define BT_SCAN_API_NAME "blocktrace.format._cscan._scan_api"

typedef struct {
    /* The scanner of `scan` when it is a ChainScan of full lines with nothing kept beside
     * the chain (no leaves, no index, not hashed, not compact); else NULL, no exception. */
    void *(*plain)(PyObject *scan);
    /* ChainScan.scan(buf[:len], *pos, *number, trust): the complete lines of buf from
     * *pos (line *number) checked and hashed, *pos and *number moved past those that
     * checked; the stop code (0: END, no complete line left).  Touches no Python object:
     * callable without the GIL.  trust 1: the first line is a JSON object (the caller
     * read it as one), its JSON test is skipped. */
    int (*lines)(void *scanner, const uint8_t *buf, Py_ssize_t len, Py_ssize_t *pos,
                 long long *number, int trust);
    /* lines() for one line: buf[*pos:len] is a whole line, its newline at len - 1 and no
     * other in it (not searched for again). */
    int (*line)(void *scanner, const uint8_t *buf, Py_ssize_t len, Py_ssize_t *pos,
                long long *number, int trust);
} BtScanAPI;

#endif

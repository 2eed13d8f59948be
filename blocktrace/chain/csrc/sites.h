/* The site table: for each instruction site (keyed by the address of its
 * OpStart event, which the table keeps alive), the prebuilt pieces of its op
 * line, before and after the gas and depth.  Open addressing, linear probing,
 * at most half full. */

#ifndef BT_SITES_H
#define BT_SITES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    uintptr_t key;
    PyObject *prefix; /* bytes */
    PyObject *suffix; /* bytes */
    PyObject *keep;   /* NULL: a free slot */
} site_t;

typedef struct {
    site_t *slots; /* NULL: empty */
    size_t mask;   /* slots - 1 */
    size_t count;
} site_table;

static inline size_t
site_slot(uintptr_t key, size_t mask)
{
    return (size_t)(((uint64_t)key >> 4) * 0x9E3779B97F4A7C15ULL >> 20) & mask;
}

/* The site of key, or NULL.  Runs no Python code. */
static inline site_t *
site_find(const site_table *t, uintptr_t key)
{
    site_t *tab = t->slots;
    if (tab == NULL) {
        return NULL;
    }
    size_t mask = t->mask, i = site_slot(key, mask);
    while (tab[i].keep != NULL) {
        if (tab[i].key == key) {
            return &tab[i];
        }
        i = (i + 1) & mask;
    }
    return NULL;
}

/* Add or replace the pieces of key (new references taken); -1 with
 * MemoryError.  A replacement drops the old pieces last (that may run code). */
int site_put(site_table *t, uintptr_t key, PyObject *prefix, PyObject *suffix, PyObject *keep);

/* Empty the table first, then drop the references (which may run code). */
void sites_clear(site_table *t);

int sites_traverse(const site_table *t, visitproc visit, void *arg);

#endif /* BT_SITES_H */

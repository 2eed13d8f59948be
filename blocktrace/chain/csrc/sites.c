/* The site table (see sites.h). */

#include "sites.h"

/* Room for one more site; no Python code runs. */
static int
sites_reserve(site_table *t)
{
    size_t cap = t->slots ? t->mask + 1 : 0;
    if ((t->count + 1) * 2 <= cap) {
        return 0;
    }
    size_t ncap = cap ? cap * 2 : 64;
    site_t *tab = PyMem_Calloc(ncap, sizeof(site_t));
    if (tab == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < cap; i++) {
        site_t *s = &t->slots[i];
        if (s->keep == NULL) {
            continue;
        }
        size_t j = site_slot(s->key, ncap - 1);
        while (tab[j].keep != NULL) {
            j = (j + 1) & (ncap - 1);
        }
        tab[j] = *s;
    }
    PyMem_Free(t->slots);
    t->slots = tab;
    t->mask = ncap - 1;
    return 0;
}

int
site_put(site_table *t, uintptr_t key, PyObject *prefix, PyObject *suffix, PyObject *keep)
{
    site_t *s = site_find(t, key);
    if (s != NULL) { /* replace: store the new pieces first, then drop the old */
        PyObject *op = s->prefix, *os = s->suffix, *ok = s->keep;
        s->prefix = Py_NewRef(prefix);
        s->suffix = Py_NewRef(suffix);
        s->keep = Py_NewRef(keep);
        Py_DECREF(op);
        Py_DECREF(os);
        Py_DECREF(ok);
        return 0;
    }
    if (sites_reserve(t) < 0) {
        return -1;
    }
    size_t i = site_slot(key, t->mask);
    while (t->slots[i].keep != NULL) {
        i = (i + 1) & t->mask;
    }
    t->slots[i].key = key;
    t->slots[i].prefix = Py_NewRef(prefix);
    t->slots[i].suffix = Py_NewRef(suffix);
    t->slots[i].keep = Py_NewRef(keep);
    t->count++;
    return 0;
}

void
sites_clear(site_table *t)
{
    site_t *tab = t->slots;
    size_t cap = tab ? t->mask + 1 : 0;
    t->slots = NULL;
    t->mask = 0;
    t->count = 0;
    for (size_t i = 0; i < cap; i++) {
        if (tab[i].keep != NULL) {
            Py_DECREF(tab[i].prefix);
            Py_DECREF(tab[i].suffix);
            Py_DECREF(tab[i].keep);
        }
    }
    PyMem_Free(tab);
}

int
sites_traverse(const site_table *t, visitproc visit, void *arg)
{
    if (t->slots == NULL) {
        return 0;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        if (t->slots[i].keep != NULL) {
            Py_VISIT(t->slots[i].prefix);
            Py_VISIT(t->slots[i].suffix);
            Py_VISIT(t->slots[i].keep);
        }
    }
    return 0;
}

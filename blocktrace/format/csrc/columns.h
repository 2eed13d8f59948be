/* OpColumns (columns.c): op lines into the query tables' column buffers. */

#ifndef BT_COLUMNS_H
#define BT_COLUMNS_H

#include <Python.h>

extern PyType_Spec columns_spec;

/* Once, before the first OpColumns is used. */
void columns_init_tables(void);

#endif /* BT_COLUMNS_H */

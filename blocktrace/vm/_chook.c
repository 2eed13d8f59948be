/* The per-instruction sys.monitoring callback, without a Python frame.
 *
 * InstructionHook(sites, vm, tracer, missing, out_of_gas, failed, disable) is
 * a callable that behaves exactly like this Python (the stepper's fast path):
 *
 *     def on_instruction(code, offset):
 *         event = sites[id(code)][offset]
 *         if event is None:
 *             event = missing(code, offset)
 *             if event is None:
 *                 return disable
 *         gas = vm.gas
 *         if gas <= 0:
 *             out_of_gas(code, offset)
 *         vm.site = event
 *         try:
 *             tracer(vm, event)
 *         except BaseException as exc:
 *             failed(exc)
 *         vm.gas = gas - 1
 *         return None
 *
 * Same effects in the same order, same exceptions.  What it saves is the
 * Python frame of the closure: sys.monitoring calls it through vectorcall.
 *
 * The one-entry cache: ``sites[id(code)]`` needs a fresh int object for the
 * key on every instruction, and instructions mostly come in runs from one code
 * object.  So the hook remembers the last code object and its list, holding
 * strong references to both (the code object cannot die, so its address cannot
 * be reused by another one).  The cache is stale only if ``sites`` itself
 * changed an existing entry; a dict watcher on ``sites`` bumps a process-wide
 * epoch on every change other than adding a new key (replacing, deleting,
 * clearing, cloning, deallocating a watched dict), and a cached entry is used
 * only while the epoch it was filled in is current.  Adding keys -- what the
 * stepper does while tracing -- leaves the cache alone.  If no dict watcher id
 * is free, or ``sites`` is not an exact dict, there is no cache.
 *
 * Public C API only (3.12+).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>

static PyObject *str_gas;   /* interned "gas" */
static PyObject *str_site;  /* interned "site" */
static PyObject *int_zero;
static PyObject *int_one;

/* -1 when no dict watcher could be had: then no hook caches. */
static int watcher_id = -1;
/* Bumped whenever a watched dict changes other than by adding a key. */
static uint64_t cache_epoch = 1;

static int
sites_changed(PyDict_WatchEvent event, PyObject *dict, PyObject *key, PyObject *new_value)
{
    (void)dict;
    (void)key;
    (void)new_value;
    if (event != PyDict_EVENT_ADDED) {
        cache_epoch++;
    }
    return 0;
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *weakrefs;
    PyObject *sites;
    PyObject *vm;
    PyObject *tracer;
    PyObject *missing;
    PyObject *out_of_gas;
    PyObject *failed;
    PyObject *disable;
    /* the one-entry cache (strong references, or NULL) */
    PyObject *last_code;
    PyObject *last_list;
    uint64_t last_epoch; /* 0: caching is off for this hook */
} InstructionHook;

/* sites[id(code)], a new reference (NULL with an exception set). */
static PyObject *
sites_for(InstructionHook *self, PyObject *code)
{
    if (self->last_code == code && self->last_epoch == cache_epoch) {
        return Py_NewRef(self->last_list);
    }
    PyObject *key = PyLong_FromVoidPtr(code);
    if (key == NULL) {
        return NULL;
    }
    PyObject *list;
    if (PyDict_CheckExact(self->sites)) {
        /* An exact int key: the lookup runs no Python code. */
        list = PyDict_GetItemWithError(self->sites, key);
        if (list == NULL) {
            if (!PyErr_Occurred()) {
                PyObject *args = PyTuple_Pack(1, key);
                if (args != NULL) {
                    PyErr_SetObject(PyExc_KeyError, args);
                    Py_DECREF(args);
                }
            }
            Py_DECREF(key);
            return NULL;
        }
        Py_INCREF(list);
    }
    else {
        list = PyObject_GetItem(self->sites, key);
    }
    Py_DECREF(key);
    if (list != NULL && self->last_epoch != 0) {
        /* Fill the cache; drop the old entry only once the new one is in place
         * (a deallocation must never see a half-updated hook). */
        PyObject *old_code = self->last_code;
        PyObject *old_list = self->last_list;
        self->last_code = Py_NewRef(code);
        self->last_list = Py_NewRef(list);
        self->last_epoch = cache_epoch;
        Py_XDECREF(old_code);
        Py_XDECREF(old_list);
    }
    return list;
}

/* list[offset], a new reference. */
static PyObject *
site_at(PyObject *list, PyObject *offset)
{
    if (PyList_CheckExact(list) && PyLong_CheckExact(offset)) {
        int overflow;
        long long i = PyLong_AsLongLongAndOverflow(offset, &overflow);
        if (overflow == 0 && i >= 0 && i < (long long)PyList_GET_SIZE(list)) {
            return Py_NewRef(PyList_GET_ITEM(list, (Py_ssize_t)i));
        }
        if (i == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_GetItem(list, offset); /* negative, out of range, not a list */
}

/* failed(exc) for the exception being raised, as an ``except`` block would
 * call it: the raised state cleared and ``exc`` the exception being handled
 * (so that an exception ``failed`` raises gets it as ``__context__``).
 * 0, or -1 with failed's exception set. */
static int
call_failed(InstructionHook *self)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (exc == NULL) { /* cannot happen: a NULL result always comes with an exception */
        PyErr_SetString(PyExc_SystemError, "InstructionHook: tracer failed without an exception");
        return -1;
    }
    PyObject *outer = PyErr_GetHandledException();
    PyErr_SetHandledException(exc);
    PyObject *result = PyObject_CallOneArg(self->failed, exc);
    PyErr_SetHandledException(outer);
    Py_XDECREF(outer);
    Py_DECREF(exc);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* The rest of the instruction once gas was read and found not an exact int
 * that fits: the generic number protocol, same order of effects. */
static PyObject *
generic_gas(InstructionHook *self, PyObject *const *args, PyObject *event, PyObject *gas)
{
    PyObject *result = NULL;
    int empty = PyObject_RichCompareBool(gas, int_zero, Py_LE);
    if (empty < 0) {
        goto done;
    }
    if (empty) {
        PyObject *r = PyObject_Vectorcall(self->out_of_gas, args, 2, NULL);
        if (r == NULL) {
            goto done;
        }
        Py_DECREF(r);
    }
    if (PyObject_SetAttr(self->vm, str_site, event) < 0) {
        goto done;
    }
    PyObject *stack[3] = {NULL, self->vm, event};
    PyObject *r = PyObject_Vectorcall(
        self->tracer, stack + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) {
        if (call_failed(self) < 0) {
            goto done;
        }
    }
    else {
        Py_DECREF(r);
    }
    PyObject *left = PyNumber_Subtract(gas, int_one);
    if (left == NULL) {
        goto done;
    }
    int set = PyObject_SetAttr(self->vm, str_gas, left);
    Py_DECREF(left);
    if (set < 0) {
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(gas);
    return result;
}

static PyObject *
hook_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    InstructionHook *self = (InstructionHook *)callable;
    if (self->sites == NULL) {
        /* only after tp_clear, from a finalizer that still reaches the hook */
        PyErr_SetString(PyExc_RuntimeError, "InstructionHook was cleared");
        return NULL;
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError,
                     "InstructionHook takes exactly 2 positional arguments "
                     "(code, offset) (%zd given%s)",
                     nargs, kwnames != NULL && PyTuple_GET_SIZE(kwnames) ? ", and keywords" : "");
        return NULL;
    }
    PyObject *code = args[0];
    PyObject *offset = args[1];

    PyObject *list = sites_for(self, code);
    if (list == NULL) {
        return NULL;
    }
    PyObject *event = site_at(list, offset);
    Py_DECREF(list);
    if (event == NULL) {
        return NULL;
    }
    if (event == Py_None) {
        Py_DECREF(event);
        event = PyObject_Vectorcall(self->missing, args, 2, NULL);
        if (event == NULL) {
            return NULL;
        }
        if (event == Py_None) {
            Py_DECREF(event);
            return Py_NewRef(self->disable);
        }
    }

    PyObject *result = NULL;
    PyObject *gas = PyObject_GetAttr(self->vm, str_gas);
    if (gas == NULL) {
        goto done;
    }
    long long left = 0;
    int fast = 0;
    if (PyLong_CheckExact(gas)) {
        int overflow;
        left = PyLong_AsLongLongAndOverflow(gas, &overflow);
        fast = overflow == 0 && !(left == -1 && PyErr_Occurred());
        if (!fast && PyErr_Occurred()) {
            Py_DECREF(gas);
            goto done;
        }
    }
    if (!fast) {
        result = generic_gas(self, args, event, gas); /* takes gas */
        goto done;
    }
    Py_DECREF(gas); /* an exact int: only its value matters from here on */
    if (left <= 0) {
        PyObject *r = PyObject_Vectorcall(self->out_of_gas, args, 2, NULL);
        if (r == NULL) {
            goto done;
        }
        Py_DECREF(r);
    }
    if (PyObject_SetAttr(self->vm, str_site, event) < 0) {
        goto done;
    }
    PyObject *stack[3] = {NULL, self->vm, event};
    PyObject *r = PyObject_Vectorcall(
        self->tracer, stack + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) {
        if (call_failed(self) < 0) {
            goto done;
        }
    }
    else {
        Py_DECREF(r);
    }
    PyObject *after;
    if (left > LLONG_MIN) {
        after = PyLong_FromLongLong(left - 1);
    }
    else { /* out_of_gas returned at the very bottom: LLONG_MIN - 1 needs a big int */
        PyObject *bottom = PyLong_FromLongLong(left);
        after = bottom == NULL ? NULL : PyNumber_Subtract(bottom, int_one);
        Py_XDECREF(bottom);
    }
    if (after == NULL) {
        goto done;
    }
    int set = PyObject_SetAttr(self->vm, str_gas, after);
    Py_DECREF(after);
    if (set < 0) {
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(event);
    return result;
}

static PyObject *
hook_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "sites", "vm", "tracer", "missing", "out_of_gas", "failed", "disable", NULL};
    PyObject *sites, *vm, *tracer, *missing, *out_of_gas, *failed, *disable;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOO:InstructionHook", kwlist, &sites,
                                     &vm, &tracer, &missing, &out_of_gas, &failed, &disable)) {
        return NULL;
    }
    PyObject *const callables[] = {tracer, missing, out_of_gas, failed};
    const char *const names[] = {"tracer", "missing", "out_of_gas", "failed"};
    for (int i = 0; i < 4; i++) {
        if (!PyCallable_Check(callables[i])) {
            PyErr_Format(PyExc_TypeError, "InstructionHook: %s must be callable, not %.100s",
                         names[i], Py_TYPE(callables[i])->tp_name);
            return NULL;
        }
    }
    int cache = 0;
    if (watcher_id >= 0 && PyDict_CheckExact(sites)) {
        if (PyDict_Watch(watcher_id, sites) < 0) {
            return NULL;
        }
        cache = 1;
    }
    InstructionHook *self = (InstructionHook *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = hook_vectorcall;
    self->weakrefs = NULL;
    self->sites = Py_NewRef(sites);
    self->vm = Py_NewRef(vm);
    self->tracer = Py_NewRef(tracer);
    self->missing = Py_NewRef(missing);
    self->out_of_gas = Py_NewRef(out_of_gas);
    self->failed = Py_NewRef(failed);
    self->disable = Py_NewRef(disable);
    self->last_code = NULL;
    self->last_list = NULL;
    self->last_epoch = cache ? cache_epoch : 0;
    return (PyObject *)self;
}

static int
hook_traverse(InstructionHook *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->sites);
    Py_VISIT(self->vm);
    Py_VISIT(self->tracer);
    Py_VISIT(self->missing);
    Py_VISIT(self->out_of_gas);
    Py_VISIT(self->failed);
    Py_VISIT(self->disable);
    Py_VISIT(self->last_code);
    Py_VISIT(self->last_list);
    return 0;
}

static int
hook_clear(InstructionHook *self)
{
    /* A cleared hook never uses its cache again (it cannot find code in
     * cleared state either: sites is gone and calls raise). */
    self->last_epoch = 0;
    Py_CLEAR(self->last_code);
    Py_CLEAR(self->last_list);
    Py_CLEAR(self->sites);
    Py_CLEAR(self->vm);
    Py_CLEAR(self->tracer);
    Py_CLEAR(self->missing);
    Py_CLEAR(self->out_of_gas);
    Py_CLEAR(self->failed);
    Py_CLEAR(self->disable);
    return 0;
}

static void
hook_dealloc(InstructionHook *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    hook_clear(self);
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type); /* instances of a heap type own a reference to it */
}

static PyObject *
hook_repr(InstructionHook *self)
{
    if (self->tracer == NULL) {
        return PyUnicode_FromString("<InstructionHook (cleared)>");
    }
    return PyUnicode_FromFormat("<InstructionHook tracer=%R>", self->tracer);
}

static PyMemberDef hook_members[] = {
    {"sites", Py_T_OBJECT_EX, offsetof(InstructionHook, sites), Py_READONLY, NULL},
    {"vm", Py_T_OBJECT_EX, offsetof(InstructionHook, vm), Py_READONLY, NULL},
    {"tracer", Py_T_OBJECT_EX, offsetof(InstructionHook, tracer), Py_READONLY, NULL},
    {"missing", Py_T_OBJECT_EX, offsetof(InstructionHook, missing), Py_READONLY, NULL},
    {"out_of_gas", Py_T_OBJECT_EX, offsetof(InstructionHook, out_of_gas), Py_READONLY, NULL},
    {"failed", Py_T_OBJECT_EX, offsetof(InstructionHook, failed), Py_READONLY, NULL},
    {"disable", Py_T_OBJECT_EX, offsetof(InstructionHook, disable), Py_READONLY, NULL},
    {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(InstructionHook, weakrefs), Py_READONLY,
     NULL},
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(InstructionHook, vectorcall), Py_READONLY,
     NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyObject *
hook_tp_call(PyObject *callable, PyObject *args, PyObject *kwargs)
{
    return PyVectorcall_Call(callable, args, kwargs);
}

PyDoc_STRVAR(hook_doc,
"InstructionHook(sites, vm, tracer, missing, out_of_gas, failed, disable)\n"
"--\n\n"
"The stepper's per-instruction callback in C: called as hook(code, offset), it\n"
"does exactly what the Python closure in blocktrace/vm/_chook.c's header does.");

static PyType_Slot hook_slots[] = {
    {Py_tp_new, hook_new},
    {Py_tp_dealloc, hook_dealloc},
    {Py_tp_traverse, hook_traverse},
    {Py_tp_clear, hook_clear},
    {Py_tp_repr, hook_repr},
    {Py_tp_call, hook_tp_call},
    {Py_tp_members, hook_members},
    {Py_tp_doc, (void *)hook_doc},
    {0, NULL},
};

static PyType_Spec hook_spec = {
    .name = "blocktrace.vm._chook.InstructionHook",
    .basicsize = sizeof(InstructionHook),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = hook_slots,
};

static struct PyModuleDef chook_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.vm._chook",
    .m_doc = "The stepper's per-instruction sys.monitoring callback, in C.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__chook(void)
{
    str_gas = PyUnicode_InternFromString("gas");
    str_site = PyUnicode_InternFromString("site");
    int_zero = PyLong_FromLong(0);
    int_one = PyLong_FromLong(1);
    if (str_gas == NULL || str_site == NULL || int_zero == NULL || int_one == NULL) {
        return NULL;
    }
    if (watcher_id < 0) {
        watcher_id = PyDict_AddWatcher(sites_changed);
        if (watcher_id < 0) {
            PyErr_Clear(); /* all dict watcher ids taken: hooks run without the cache */
        }
    }
    PyObject *module = PyModule_Create(&chook_module);
    if (module == NULL) {
        return NULL;
    }
    PyObject *type = PyType_FromSpec(&hook_spec);
    if (type == NULL || PyModule_AddObjectRef(module, "InstructionHook", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(module);
        return NULL;
    }
    Py_DECREF(type);
    if (PyModule_AddIntConstant(module, "CACHE", watcher_id >= 0) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

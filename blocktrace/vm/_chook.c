/* The per-instruction sys.monitoring callback, without a Python frame.
 *
 * InstructionHook(sites, vm, tracer, missing, out_of_gas, failed, disable,
 * *, may_disable=False) is a callable that behaves exactly like this Python (the
 * stepper's fast path; with may_disable, ``tracer(vm, event)`` returning
 * ``disable`` makes the hook return ``disable`` too, once gas is decremented):
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
 * vm attributes: when ``gas`` and ``site`` are plain instance attributes of
 * vm's type (the stepper's case; see learn_vm_type), they are read and written
 * in vm's instance dict directly, skipping the three MRO lookups a generic
 * getattr/setattr makes; a type watcher notices any change to the type.  Any
 * other vm goes through its type's tp_getattro/tp_setattro.
 *
 * Public C API only (3.12+); the one struct field read beyond the slots is
 * tp_version_tag, as a yes/no guard (see learn_vm_type).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* Per module (multi-phase init: one per interpreter that imports it). */
typedef struct {
    PyObject *hook_type;
    PyObject *meter_type;
    PyObject *str_gas;  /* interned "gas" */
    PyObject *str_site; /* interned "site" */
    PyObject *str_depth; /* interned "depth" */
    PyObject *int_zero;
    PyObject *int_one;
    /* 0 when no dict watcher could be had: then no hook caches. */
    int watching_dicts;
    int dict_watcher_id;
    /* 0 when no type watcher could be had: then vm attributes always go
     * through the type's getattro/setattro. */
    int watching_types;
    int type_watcher_id;
} chook_state;

/* Bumped whenever a watched dict changes other than by adding a key, and
 * whenever a watched type is modified (PyType_Modified).  A watcher callback
 * is told no more than the dict or type, so these are process-wide, shared by
 * the watchers of every interpreter (atomic: interpreters may have their own
 * GIL); a bump only ever makes a hook look again. */
static uint64_t cache_epoch = 1;
static uint64_t type_epoch = 1;

static inline uint64_t
load_epoch(const uint64_t *epoch)
{
    return __atomic_load_n(epoch, __ATOMIC_RELAXED);
}

static int
type_changed(PyTypeObject *type)
{
    (void)type;
    __atomic_add_fetch(&type_epoch, 1, __ATOMIC_RELAXED);
    return 0;
}

static int
sites_changed(PyDict_WatchEvent event, PyObject *dict, PyObject *key, PyObject *new_value)
{
    (void)dict;
    (void)key;
    (void)new_value;
    if (event != PyDict_EVENT_ADDED) {
        __atomic_add_fetch(&cache_epoch, 1, __ATOMIC_RELAXED);
    }
    return 0;
}

/* vm.<name> and vm.<name> = value through the type's slots, as PyObject_GetAttr
 * and PyObject_SetAttr do once they have checked (and, 3.13, re-interned) the
 * name: ours are interned exact strs already. */
static inline PyObject *
get_attr(PyObject *obj, PyObject *name)
{
    getattrofunc get = Py_TYPE(obj)->tp_getattro;
    return get != NULL ? get(obj, name) : PyObject_GetAttr(obj, name);
}

static inline int
set_attr(PyObject *obj, PyObject *name, PyObject *value)
{
    setattrofunc set = Py_TYPE(obj)->tp_setattro;
    return set != NULL ? set(obj, name, value) : PyObject_SetAttr(obj, name, value);
}

/* Meter: the step budget in C.  ``used`` instructions charged so far and the
 * ``limit``; ``gas`` (what tracers read as ``vm.gas``) is limit - used.  A hook
 * given a meter charges it without making an int object per instruction. */
typedef struct {
    PyObject_HEAD
    unsigned long long used;
    unsigned long long limit;
} Meter;

/* limit - used as a Python int (negative once an out_of_gas that returned let
 * a run go past its budget). */
static PyObject *
meter_gas_value(const Meter *m)
{
    if (m->used <= m->limit) {
        return PyLong_FromUnsignedLongLong(m->limit - m->used);
    }
    unsigned long long over = m->used - m->limit;
    return over <= (unsigned long long)LLONG_MAX ? PyLong_FromLongLong(-(long long)over)
                                                 : PyLong_FromLongLong(LLONG_MIN);
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *weakrefs;
    chook_state *st; /* the module's (its type holds the module) */
    PyObject *sites;
    PyObject *vm;
    PyObject *tracer;
    PyObject *missing;
    PyObject *out_of_gas;
    PyObject *failed;
    PyObject *disable;
    PyObject *op_line; /* NULL: none; else op_line(event, gas, depth) comes first */
    int may_disable; /* the tracer's DISABLE for an OpStart is passed on */
    PyObject *meter; /* NULL: gas is vm.gas; else the Meter charged (vm.gas is not touched) */
    PyObject *skip;  /* NULL, or the site value meaning "charge, emit nothing" (needs a meter) */
    /* the one-entry cache (strong references, or NULL) */
    PyObject *last_code;
    PyObject *last_list;
    uint64_t last_epoch; /* 0: caching is off for this hook */
    /* what is known of type(vm) (a strong reference, or NULL), see plain_dict */
    PyObject *vm_type;
    uint64_t vm_type_epoch;
    int vm_plain;
} InstructionHook;

/* Whether ``gas`` and ``site`` are plain instance attributes of vm's type
 * ``tp``: generic getattro/setattro, an instance dict, and neither name
 * anywhere in the MRO (so no descriptor, no class attribute, no __getattr__).
 * Then ``vm.gas`` is exactly ``vm.__dict__["gas"]`` (AttributeError when
 * absent) and ``vm.site = x`` exactly ``vm.__dict__["site"] = x``.  What it
 * decides stays true while tp is not modified: tp is watched (a type watcher
 * bumps type_epoch on PyType_Modified, which any change to tp or to a base
 * calls), and the answer is used only while type_epoch has not moved.
 * CPython calls a type's watchers only if the type has a version tag (one was
 * assigned by an attribute lookup since the last change), so the lookup below
 * assigns one, and without one (tags exhausted) the answer is "not plain". */
static int
learn_vm_type(InstructionHook *self, PyTypeObject *tp)
{
    uint64_t epoch = load_epoch(&type_epoch);
    int plain = self->st->watching_types
                && ((tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) || tp->tp_dictoffset != 0)
                && tp->tp_getattro == PyObject_GenericGetAttr
                && tp->tp_setattro == PyObject_GenericSetAttr && tp->tp_mro != NULL
                && PyTuple_Check(tp->tp_mro);
    if (plain && PyType_Watch(self->st->type_watcher_id, (PyObject *)tp) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; plain && i < PyTuple_GET_SIZE(tp->tp_mro); i++) {
        PyObject *base = PyTuple_GET_ITEM(tp->tp_mro, i);
        if (!PyType_Check(base)) {
            plain = 0;
            break;
        }
        PyObject *dict = PyType_GetDict((PyTypeObject *)base);
        if (dict == NULL) {
            plain = 0;
            break;
        }
        /* type dicts have exact str keys: no Python code runs here */
        int has = self->meter != NULL ? 0 : PyDict_Contains(dict, self->st->str_gas);
        if (has == 0) {
            has = PyDict_Contains(dict, self->st->str_site);
        }
        Py_DECREF(dict);
        if (has < 0) {
            return -1;
        }
        plain = !has;
    }
    if (plain) {
        /* The lookup that gives tp a version tag (neither name is in the MRO,
         * so this reads the instance dict and runs no Python code). */
        PyObject *value = PyObject_GenericGetAttr(
            self->vm, self->meter != NULL ? self->st->str_site : self->st->str_gas);
        if (value != NULL) {
            Py_DECREF(value);
        }
        else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
        }
        else {
            return -1;
        }
        plain = tp->tp_version_tag != 0;
    }
    PyObject *old = self->vm_type;
    self->vm_type = Py_NewRef((PyObject *)tp);
    self->vm_type_epoch = epoch;
    self->vm_plain = plain;
    Py_XDECREF(old);
    return 0;
}

/* vm's instance dict (a new reference) when vm.gas and vm.site are plain
 * instance attributes; NULL without an exception when they may not be (then
 * the type's slots do the work), NULL with one on error. */
static PyObject *
plain_dict(InstructionHook *self)
{
    PyTypeObject *tp = Py_TYPE(self->vm);
    if ((PyObject *)tp != self->vm_type || self->vm_type_epoch != load_epoch(&type_epoch)) {
        if (learn_vm_type(self, tp) < 0) {
            return NULL;
        }
    }
    if (!self->vm_plain || tp->tp_getattro != PyObject_GenericGetAttr
        || tp->tp_setattro != PyObject_GenericSetAttr) {
        return NULL;
    }
    return PyObject_GenericGetDict(self->vm, NULL);
}

/* vm.<name> = value */
static int
vm_set(InstructionHook *self, PyObject *name, PyObject *value)
{
    PyObject *dict = plain_dict(self);
    if (dict != NULL) {
        int done = PyDict_SetItem(dict, name, value);
        Py_DECREF(dict);
        return done;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    return set_attr(self->vm, name, value);
}

/* sites[id(code)], a new reference (NULL with an exception set). */
static PyObject *
sites_for(InstructionHook *self, PyObject *code)
{
    if (self->last_code == code && self->last_epoch == load_epoch(&cache_epoch)) {
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
        self->last_epoch = load_epoch(&cache_epoch);
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

/* tracer(vm, event), and failed(exc) if it raised: 1 when the tracer's answer
 * is to be passed on (may_disable and it returned DISABLE), 0 otherwise, -1
 * with failed's exception set. */
static int
call_tracer(InstructionHook *self, PyObject *event)
{
    PyObject *stack[3] = {NULL, self->vm, event};
    PyObject *r = PyObject_Vectorcall(
        self->tracer, stack + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) {
        return call_failed(self);
    }
    int pass_disable = self->may_disable && r == self->disable;
    Py_DECREF(r);
    return pass_disable;
}

/* op_line(event, gas, vm.depth), and the tracer when that did not handle the
 * event (returned false); failed(exc) if either raised (or reading depth did).
 * Takes `dict` (vm's instance dict when plain, else NULL) to read depth from.
 * Returns as call_tracer. */
static int
call_op_line(InstructionHook *self, PyObject *event, PyObject *gas, PyObject *dict)
{
    PyObject *depth = NULL;
    if (dict != NULL) {
        depth = PyDict_GetItemWithError(dict, self->st->str_depth);
        Py_XINCREF(depth);
        Py_DECREF(dict);
    }
    if (depth == NULL && !PyErr_Occurred()) {
        depth = get_attr(self->vm, self->st->str_depth);
    }
    if (depth == NULL) {
        return call_failed(self);
    }
    PyObject *stack[4] = {NULL, event, gas, depth};
    PyObject *r = PyObject_Vectorcall(
        self->op_line, stack + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(depth);
    if (r == NULL) {
        return call_failed(self);
    }
    int done = r == Py_True ? 1 : r == Py_False ? 0 : PyObject_IsTrue(r);
    Py_DECREF(r);
    if (done < 0) {
        return call_failed(self);
    }
    return done ? 0 : call_tracer(self, event);
}

/* The rest of the instruction once gas was read and found not an exact int
 * that fits: the generic number protocol, same order of effects. */
static PyObject *
generic_gas(InstructionHook *self, PyObject *const *args, PyObject *event, PyObject *gas)
{
    PyObject *result = NULL;
    int empty = PyObject_RichCompareBool(gas, self->st->int_zero, Py_LE);
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
    if (vm_set(self, self->st->str_site, event) < 0) {
        goto done;
    }
    int pass_disable = self->op_line != NULL ? call_op_line(self, event, gas, NULL)
                                             : call_tracer(self, event);
    if (pass_disable < 0) {
        goto done;
    }
    PyObject *left = PyNumber_Subtract(gas, self->st->int_one);
    if (left == NULL) {
        goto done;
    }
    int set = vm_set(self, self->st->str_gas, left);
    Py_DECREF(left);
    if (set < 0) {
        goto done;
    }
    result = Py_NewRef(pass_disable ? self->disable : Py_None);
done:
    Py_DECREF(gas);
    return result;
}

/* The rest of the instruction with a meter (takes `event`): gas is the
 * meter's, so no int object is made unless op_line is given it.
 *
 *     used = meter.used
 *     if used >= meter.limit:
 *         out_of_gas(code, offset)
 *     if event is skip:
 *         meter.used = used + 1
 *         return None
 *     vm.site = event
 *     try:
 *         if op_line is None or not op_line(event, meter.gas, vm.depth):
 *             tracer(vm, event)
 *     except BaseException as exc:
 *         failed(exc)
 *     meter.used = used + 1
 *     return None
 */
static PyObject *
metered_call(InstructionHook *self, PyObject *const *args, PyObject *event)
{
    Meter *m = (Meter *)self->meter;
    PyObject *result = NULL;
    unsigned long long used = m->used;
    if (used >= m->limit) {
        PyObject *r = PyObject_Vectorcall(self->out_of_gas, args, 2, NULL);
        if (r == NULL) {
            goto done;
        }
        Py_DECREF(r);
    }
    if (event == self->skip) {
        m->used = used + 1;
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *dict = plain_dict(self);
    int set_site;
    if (dict != NULL) {
        set_site = PyDict_SetItem(dict, self->st->str_site, event);
    }
    else {
        set_site = PyErr_Occurred() ? -1 : set_attr(self->vm, self->st->str_site, event);
    }
    if (set_site < 0) {
        Py_XDECREF(dict);
        goto done;
    }
    int pass_disable;
    if (self->op_line != NULL) {
        PyObject *gas = meter_gas_value(m);
        if (gas == NULL) {
            Py_XDECREF(dict);
            goto done;
        }
        pass_disable = call_op_line(self, event, gas, dict); /* takes dict */
        Py_DECREF(gas);
    }
    else {
        Py_XDECREF(dict);
        pass_disable = call_tracer(self, event);
    }
    if (pass_disable < 0) {
        goto done;
    }
    m->used = used + 1;
    result = Py_NewRef(pass_disable ? self->disable : Py_None);
done:
    Py_DECREF(event);
    return result;
}

static PyObject *
hook_call(InstructionHook *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
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
    if (self->meter != NULL) {
        return metered_call(self, args, event); /* takes event */
    }

    PyObject *result = NULL;
    PyObject *gas_held = NULL; /* the exact int gas, for op_line */
    PyObject *dict = plain_dict(self); /* shared by reading gas and setting site */
    PyObject *gas;
    if (dict != NULL) {
        gas = PyDict_GetItemWithError(dict, self->st->str_gas);
        Py_XINCREF(gas);
        if (gas == NULL && !PyErr_Occurred()) {
            Py_CLEAR(dict);
            gas = get_attr(self->vm, self->st->str_gas); /* absent: the AttributeError */
        }
    }
    else {
        gas = PyErr_Occurred() ? NULL : get_attr(self->vm, self->st->str_gas);
    }
    if (gas == NULL) {
        Py_XDECREF(dict);
        goto done;
    }
    long long left = 0;
    int fast = 0;
    if (PyLong_CheckExact(gas)) {
        int overflow;
        left = PyLong_AsLongLongAndOverflow(gas, &overflow);
        fast = overflow == 0 && !(left == -1 && PyErr_Occurred());
        if (!fast && PyErr_Occurred()) {
            Py_XDECREF(dict);
            Py_DECREF(gas);
            goto done;
        }
    }
    if (!fast) {
        Py_XDECREF(dict);
        result = generic_gas(self, args, event, gas); /* takes gas */
        goto done;
    }
    gas_held = gas; /* an exact int: its value is `left` */
    if (left <= 0) {
        Py_XDECREF(dict);
        dict = NULL; /* out_of_gas may change anything */
        PyObject *r = PyObject_Vectorcall(self->out_of_gas, args, 2, NULL);
        if (r == NULL) {
            goto done;
        }
        Py_DECREF(r);
    }
    int set_site;
    if (dict != NULL) {
        set_site = PyDict_SetItem(dict, self->st->str_site, event);
    }
    else {
        set_site = vm_set(self, self->st->str_site, event);
    }
    if (set_site < 0) {
        Py_XDECREF(dict);
        goto done;
    }
    int pass_disable;
    if (self->op_line != NULL) {
        pass_disable = call_op_line(self, event, gas, dict); /* takes dict */
    }
    else {
        Py_XDECREF(dict);
        pass_disable = call_tracer(self, event);
    }
    if (pass_disable < 0) {
        goto done;
    }
    PyObject *after;
    if (left > LLONG_MIN) {
        after = PyLong_FromLongLong(left - 1);
    }
    else { /* out_of_gas returned at the very bottom: LLONG_MIN - 1 needs a big int */
        PyObject *bottom = PyLong_FromLongLong(left);
        after = bottom == NULL ? NULL : PyNumber_Subtract(bottom, self->st->int_one);
        Py_XDECREF(bottom);
    }
    if (after == NULL) {
        goto done;
    }
    int set = vm_set(self, self->st->str_gas, after);
    Py_DECREF(after);
    if (set < 0) {
        goto done;
    }
    result = Py_NewRef(pass_disable ? self->disable : Py_None);
done:
    Py_XDECREF(gas_held);
    Py_DECREF(event);
    return result;
}

/* sys.monitoring calls its callback through a borrowed reference, and the
 * stepper re-registers its callbacks from inside some of the calls the hook
 * makes (a tracer failing or swapped, the run halting): the hook holds itself
 * for the duration of the call, as a running Python function's frame holds
 * the function. */
static PyObject *
hook_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_INCREF(callable);
    PyObject *result = hook_call((InstructionHook *)callable, args, nargsf, kwnames);
    Py_DECREF(callable);
    return result;
}

static PyObject *
hook_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sites", "vm", "tracer", "missing", "out_of_gas", "failed",
                             "disable", "may_disable", "op_line", "meter", "skip", NULL};
    PyObject *sites, *vm, *tracer, *missing, *out_of_gas, *failed, *disable;
    PyObject *op_line = Py_None;
    PyObject *meter = Py_None;
    PyObject *skip = Py_None;
    int may_disable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOO|$pOOO:InstructionHook", kwlist,
                                     &sites, &vm, &tracer, &missing, &out_of_gas, &failed,
                                     &disable, &may_disable, &op_line, &meter, &skip)) {
        return NULL;
    }
    if (op_line != Py_None && !PyCallable_Check(op_line)) {
        PyErr_Format(PyExc_TypeError, "InstructionHook: op_line must be callable or None, not %.100s",
                     Py_TYPE(op_line)->tp_name);
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
    chook_state *st = PyType_GetModuleState(type);
    if (st == NULL) {
        return NULL;
    }
    if (meter != Py_None && !PyObject_TypeCheck(meter, (PyTypeObject *)st->meter_type)) {
        PyErr_Format(PyExc_TypeError, "InstructionHook: meter must be a Meter or None, not %.100s",
                     Py_TYPE(meter)->tp_name);
        return NULL;
    }
    if (skip != Py_None && meter == Py_None) {
        PyErr_SetString(PyExc_TypeError, "InstructionHook: skip needs a meter");
        return NULL;
    }
    int cache = 0;
    if (st->watching_dicts && PyDict_CheckExact(sites)) {
        if (PyDict_Watch(st->dict_watcher_id, sites) < 0) {
            return NULL;
        }
        cache = 1;
    }
    InstructionHook *self = (InstructionHook *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = hook_vectorcall;
    self->may_disable = may_disable;
    self->weakrefs = NULL;
    self->st = st;
    self->sites = Py_NewRef(sites);
    self->vm = Py_NewRef(vm);
    self->tracer = Py_NewRef(tracer);
    self->missing = Py_NewRef(missing);
    self->out_of_gas = Py_NewRef(out_of_gas);
    self->failed = Py_NewRef(failed);
    self->disable = Py_NewRef(disable);
    self->op_line = op_line == Py_None ? NULL : Py_NewRef(op_line);
    self->meter = meter == Py_None ? NULL : Py_NewRef(meter);
    self->skip = skip == Py_None ? NULL : Py_NewRef(skip);
    self->last_code = NULL;
    self->last_list = NULL;
    self->last_epoch = cache ? load_epoch(&cache_epoch) : 0;
    self->vm_type = NULL;
    self->vm_type_epoch = 0;
    self->vm_plain = 0;
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
    Py_VISIT(self->op_line);
    Py_VISIT(self->meter);
    Py_VISIT(self->skip);
    Py_VISIT(self->last_code);
    Py_VISIT(self->last_list);
    Py_VISIT(self->vm_type);
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
    self->vm_plain = 0;
    Py_CLEAR(self->vm_type);
    Py_CLEAR(self->sites);
    Py_CLEAR(self->vm);
    Py_CLEAR(self->tracer);
    Py_CLEAR(self->missing);
    Py_CLEAR(self->out_of_gas);
    Py_CLEAR(self->failed);
    Py_CLEAR(self->disable);
    Py_CLEAR(self->op_line);
    Py_CLEAR(self->meter);
    Py_CLEAR(self->skip);
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
hook_get_op_line(InstructionHook *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->op_line != NULL ? self->op_line : Py_None);
}

static PyObject *
hook_get_meter(InstructionHook *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->meter != NULL ? self->meter : Py_None);
}

static PyObject *
hook_get_skip(InstructionHook *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->skip != NULL ? self->skip : Py_None);
}

static PyGetSetDef hook_getset[] = {
    {"op_line", (getter)hook_get_op_line, NULL, "op_line(event, gas, depth), or None.", NULL},
    {"meter", (getter)hook_get_meter, NULL, "The Meter charged per instruction, or None.", NULL},
    {"skip", (getter)hook_get_skip, NULL, "The site value charged without an event, or None.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *
hook_tp_call(PyObject *callable, PyObject *args, PyObject *kwargs)
{
    return PyVectorcall_Call(callable, args, kwargs);
}

PyDoc_STRVAR(hook_doc,
"InstructionHook(sites, vm, tracer, missing, out_of_gas, failed, disable, *, may_disable=False,\n"
"                op_line=None, meter=None, skip=None)\n"
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
    {Py_tp_getset, hook_getset},
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

/* -- Meter ------------------------------------------------------------- */

static int
to_u64(PyObject *value, unsigned long long *out, const char *what)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "Meter.%s must be an int, not %.100s", what,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Format(PyExc_ValueError, "Meter.%s must be 0 to 2**64-1", what);
        }
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *
meter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"limit", NULL};
    PyObject *limit;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Meter", kwlist, &limit)) {
        return NULL;
    }
    unsigned long long value;
    if (to_u64(limit, &value, "limit") < 0) {
        return NULL;
    }
    Meter *self = (Meter *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->used = 0;
    self->limit = value;
    return (PyObject *)self;
}

static void
meter_dealloc(Meter *self)
{
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
meter_get_used(Meter *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->used);
}

static int
meter_set_used(Meter *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete Meter.used");
        return -1;
    }
    return to_u64(value, &self->used, "used");
}

static PyObject *
meter_get_limit(Meter *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->limit);
}

static PyObject *
meter_get_gas(Meter *self, void *Py_UNUSED(closure))
{
    return meter_gas_value(self);
}

/* gas = value: used becomes limit - value (0 to 2**64-1). */
static int
meter_set_gas(Meter *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete Meter.gas");
        return -1;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "Meter.gas must be an int, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    PyObject *limit = PyLong_FromUnsignedLongLong(self->limit);
    if (limit == NULL) {
        return -1;
    }
    PyObject *used = PyNumber_Subtract(limit, value);
    Py_DECREF(limit);
    if (used == NULL) {
        return -1;
    }
    unsigned long long v;
    int done = to_u64(used, &v, "used (limit - gas)");
    Py_DECREF(used);
    if (done == 0) {
        self->used = v;
    }
    return done;
}

static PyGetSetDef meter_getset[] = {
    {"used", (getter)meter_get_used, (setter)meter_set_used, "Instructions charged so far.", NULL},
    {"limit", (getter)meter_get_limit, NULL, "The budget.", NULL},
    {"gas", (getter)meter_get_gas, (setter)meter_set_gas, "limit - used.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(meter_doc,
"Meter(limit)\n"
"--\n\n"
"The stepper's step budget in C: ``used`` instructions of ``limit``; ``gas`` is\n"
"limit - used.  An InstructionHook given it charges it per instruction without\n"
"making an int object.");

static PyType_Slot meter_slots[] = {
    {Py_tp_new, meter_new},
    {Py_tp_dealloc, meter_dealloc},
    {Py_tp_getset, meter_getset},
    {Py_tp_doc, (void *)meter_doc},
    {0, NULL},
};

static PyType_Spec meter_spec = {
    .name = "blocktrace.vm._chook.Meter",
    .basicsize = sizeof(Meter),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = meter_slots,
};

/* discard(vm, event): blocktrace.discard_trace in C.  The stepper calls this one
 * in its place: the same no-op without a Python frame. */
static PyObject *
discard(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    (void)args;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "discard() takes 2 positional arguments (%zd given)", nargs);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef chook_methods[] = {
    {"discard", (PyCFunction)(void (*)(void))discard, METH_FASTCALL,
     "discard(vm, event, /)\n--\n\nblocktrace.discard_trace without a Python frame: does nothing."},
    {NULL, NULL, 0, NULL},
};

static int
chook_exec(PyObject *module)
{
    chook_state *st = PyModule_GetState(module);
    st->str_gas = PyUnicode_InternFromString("gas");
    st->str_site = PyUnicode_InternFromString("site");
    st->str_depth = PyUnicode_InternFromString("depth");
    st->int_zero = PyLong_FromLong(0);
    st->int_one = PyLong_FromLong(1);
    if (st->str_gas == NULL || st->str_site == NULL || st->str_depth == NULL
        || st->int_zero == NULL
        || st->int_one == NULL) {
        return -1;
    }
    int id = PyDict_AddWatcher(sites_changed);
    if (id < 0) {
        PyErr_Clear(); /* all dict watcher ids taken: hooks run without the cache */
    }
    else {
        st->dict_watcher_id = id;
        st->watching_dicts = 1;
    }
    id = PyType_AddWatcher(type_changed);
    if (id < 0) {
        PyErr_Clear(); /* all type watcher ids taken: vm attributes take the slow path */
    }
    else {
        st->type_watcher_id = id;
        st->watching_types = 1;
    }
    st->hook_type = PyType_FromModuleAndSpec(module, &hook_spec, NULL);
    st->meter_type = PyType_FromModuleAndSpec(module, &meter_spec, NULL);
    if (st->hook_type == NULL || st->meter_type == NULL
        || PyModule_AddObjectRef(module, "InstructionHook", st->hook_type) < 0
        || PyModule_AddObjectRef(module, "Meter", st->meter_type) < 0
        || PyModule_AddIntConstant(module, "CACHE", st->watching_dicts) < 0
        || PyModule_AddIntConstant(module, "PLAIN_ATTRIBUTES", st->watching_types) < 0) {
        return -1;
    }
    return 0;
}

static int
chook_traverse(PyObject *module, visitproc visit, void *arg)
{
    chook_state *st = PyModule_GetState(module);
    Py_VISIT(st->hook_type);
    Py_VISIT(st->meter_type);
    return 0;
}

static int
chook_clear(PyObject *module)
{
    chook_state *st = PyModule_GetState(module);
    Py_CLEAR(st->hook_type);
    Py_CLEAR(st->meter_type);
    Py_CLEAR(st->str_gas);
    Py_CLEAR(st->str_site);
    Py_CLEAR(st->str_depth);
    Py_CLEAR(st->int_zero);
    Py_CLEAR(st->int_one);
    return 0;
}

static void
chook_free(void *module)
{
    chook_state *st = PyModule_GetState((PyObject *)module);
    chook_clear((PyObject *)module);
    /* dicts and types still marked with an id call nothing once it is cleared */
    if (st->watching_dicts) {
        st->watching_dicts = 0;
        if (PyDict_ClearWatcher(st->dict_watcher_id) < 0) {
            PyErr_WriteUnraisable((PyObject *)module);
        }
    }
    if (st->watching_types) {
        st->watching_types = 0;
        if (PyType_ClearWatcher(st->type_watcher_id) < 0) {
            PyErr_WriteUnraisable((PyObject *)module);
        }
    }
}

static PyModuleDef_Slot chook_slots[] = {
    {Py_mod_exec, chook_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef chook_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.vm._chook",
    .m_doc = "The stepper's per-instruction sys.monitoring callback, in C.",
    .m_size = sizeof(chook_state),
    .m_methods = chook_methods,
    .m_slots = chook_slots,
    .m_traverse = chook_traverse,
    .m_clear = chook_clear,
    .m_free = chook_free,
};

PyMODINIT_FUNC
PyInit__chook(void)
{
    return PyModuleDef_Init(&chook_module);
}

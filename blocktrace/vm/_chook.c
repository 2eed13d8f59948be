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
 *         if gas <= 0 and out_of_gas(code, offset) is disable:
 *             return None  # halted at a POP_EXCEPT (see Stepper._out_of_gas)
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

#include "pyutil.h"
#include "sink.h"
#include "linestart.h"

/* Per module (multi-phase init: one per interpreter that imports it). */
typedef struct {
    PyObject *hook_type;
    PyObject *meter_type;
    PyObject *callhook_type;
    PyObject *filter_type;
    PyObject *blocks_type;
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
    /* op_line's C entry when it is a sink's op (events/csrc/sink.h), else NULL;
     * the sink is op_line's self (op_line holds it) */
    const bt_sink_api *sink_api;
    PyObject *sink;
    /* the tracer's C entry for a line start with values (events/csrc/linestart.h),
     * else NULL: called, with gas and depth, for what the sink's op did not take */
    const bt_line_start_api *line_start_api;
    int may_disable; /* the tracer's DISABLE for an OpStart is passed on */
    PyObject *meter; /* NULL: gas is vm.gas; else the Meter charged (vm.gas is not touched) */
    PyObject *skip;  /* NULL, or the site value meaning "charge, emit nothing" (needs a meter) */
    /* the one-entry cache (strong references, or NULL) */
    PyObject *last_code;
    PyObject *last_list;
    PyObject *prev_code; /* the entry before (a call and its return switch between two) */
    PyObject *prev_list;
    uint64_t last_epoch; /* 0: caching is off for this hook; both entries are of this epoch */
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
    uint64_t now = load_epoch(&cache_epoch);
    if (self->last_epoch == now) {
        if (self->last_code == code) {
            return Py_NewRef(self->last_list);
        }
        if (self->prev_code == code) { /* the two entries swap places */
            PyObject *list = self->prev_list;
            self->prev_code = self->last_code;
            self->prev_list = self->last_list;
            self->last_code = code;
            self->last_list = list;
            return Py_NewRef(list);
        }
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
        /* Fill the cache (the newest entry first, the last one second); drop
         * what leaves it only once the new state is in place (a deallocation
         * must never see a half-updated hook).  Entries of an older epoch go. */
        PyObject *drop[4] = {self->prev_code, self->prev_list, NULL, NULL};
        if (self->last_epoch == now) {
            self->prev_code = self->last_code;
            self->prev_list = self->last_list;
        }
        else {
            drop[2] = self->last_code;
            drop[3] = self->last_list;
            self->prev_code = NULL;
            self->prev_list = NULL;
        }
        self->last_code = Py_NewRef(code);
        self->last_list = Py_NewRef(list);
        self->last_epoch = now;
        for (int i = 0; i < 4; i++) {
            Py_XDECREF(drop[i]);
        }
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

/* failed(*args, exc) for the exception being raised, as an ``except`` block would
 * call it: the raised state cleared and ``exc`` the exception being handled (so
 * that an exception ``failed`` raises gets it as ``__context__``).  nargs <= 4
 * arguments before exc; `who` begins the SystemError of a NULL result raised
 * nothing.  0, or -1 with failed's exception set. */
static int
call_in_except(PyObject *failed, PyObject *const *args, size_t nargs, const char *who)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (exc == NULL) { /* cannot happen: a NULL result always comes with an exception */
        PyErr_Format(PyExc_SystemError, "%s failed without an exception", who);
        return -1;
    }
    PyObject *outer = PyErr_GetHandledException();
    PyErr_SetHandledException(exc);
    PyObject *stack[5];
    for (size_t i = 0; i < nargs; i++) {
        stack[i] = args[i];
    }
    stack[nargs] = exc;
    PyObject *result = PyObject_Vectorcall(failed, stack, nargs + 1, NULL);
    PyErr_SetHandledException(outer);
    Py_XDECREF(outer);
    Py_DECREF(exc);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* the instruction hook's failed(exc) (call_in_except); not inlined: an error path */
static Py_NO_INLINE int
call_failed(InstructionHook *self)
{
    return call_in_except(self->failed, NULL, 0, "InstructionHook: tracer");
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

/* vm.depth, a new reference, read from `dict` (vm's instance dict when plain,
 * else NULL; taken) or through the type; NULL with an exception on error. */
static PyObject *
read_depth(InstructionHook *self, PyObject *dict)
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
    return depth;
}

/* op_line(event, gas, depth) (takes depth), and the tracer when that did not
 * handle the event (returned false); failed(exc) if either raised.  Returns as
 * call_tracer. */
static int
call_op_line_with(InstructionHook *self, PyObject *event, PyObject *gas, PyObject *depth)
{
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

/* op_line(event, gas, vm.depth), and the tracer when that did not handle the
 * event (returned false); failed(exc) if either raised (or reading depth did).
 * Takes `dict` (vm's instance dict when plain, else NULL) to read depth from.
 * Returns as call_tracer. */
static int
call_op_line(InstructionHook *self, PyObject *event, PyObject *gas, PyObject *dict)
{
    PyObject *depth = read_depth(self, dict);
    if (depth == NULL) {
        return call_failed(self);
    }
    return call_op_line_with(self, event, gas, depth);
}

/* The same with the meter's gas: through the sink's C entry (no int object, no
 * call) when op_line is a sink's op and gas and depth fit 64 bits, else as
 * call_op_line with gas made an int. */
static int
metered_op_line(InstructionHook *self, PyObject *event, Meter *m, PyObject *dict)
{
    PyObject *depth = read_depth(self, dict);
    if (depth == NULL) {
        return call_failed(self);
    }
    if (self->sink_api != NULL && PyLong_CheckExact(depth) && m->used <= m->limit
        && m->limit - m->used <= (unsigned long long)LLONG_MAX) {
        int overflow;
        long long d = PyLong_AsLongLongAndOverflow(depth, &overflow); /* cannot fail */
        if (overflow == 0) {
            Py_DECREF(depth);
            long long gas = (long long)(m->limit - m->used);
            int done = self->sink_api->op(self->sink, event, gas, d);
            if (done == 0 && self->line_start_api != NULL) {
                done = self->line_start_api->line_start(self->tracer, self->vm, event, gas, d);
            }
            if (done < 0) {
                return call_failed(self);
            }
            return done ? 0 : call_tracer(self, event);
        }
    }
    PyObject *gas = meter_gas_value(m);
    if (gas == NULL) {
        Py_DECREF(depth);
        return call_failed(self);
    }
    int pass_disable = call_op_line_with(self, event, gas, depth);
    Py_DECREF(gas);
    return pass_disable;
}

/* out_of_gas(code, offset), gas being spent: 1 when it answered disable (halted at a
 * POP_EXCEPT: the halt is raised at the next one, and the instruction returns None), 0
 * when it answered otherwise (the instruction goes on), -1 when it raised.  Inlined,
 * as the code it stands for was: the instruction's paths keep their shape. */
static Py_ALWAYS_INLINE inline int
call_out_of_gas(InstructionHook *self, PyObject *const *args)
{
    PyObject *r = PyObject_Vectorcall(self->out_of_gas, args, 2, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return r == self->disable;
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
        int halted = call_out_of_gas(self, args);
        if (halted) { /* an error (result NULL), or halted: None */
            result = halted > 0 ? Py_NewRef(Py_None) : NULL;
            goto done;
        }
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
 *     if used >= meter.limit and out_of_gas(code, offset) is disable:
 *         return None
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
        int halted = call_out_of_gas(self, args);
        if (halted) { /* an error (result NULL), or halted: None */
            result = halted > 0 ? Py_NewRef(Py_None) : NULL;
            goto done;
        }
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
        pass_disable = metered_op_line(self, event, m, dict); /* takes dict */
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
        int halted = call_out_of_gas(self, args);
        if (halted) { /* an error (result NULL), or halted: None */
            result = halted > 0 ? Py_NewRef(Py_None) : NULL;
            goto done;
        }
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
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOO|pOOO:InstructionHook", kwlist,
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
    self->sink = NULL;
    self->sink_api = bt_sink_of(self->op_line, 0, &self->sink);
    self->line_start_api = bt_line_start_of(self->tracer);
    self->meter = meter == Py_None ? NULL : Py_NewRef(meter);
    self->skip = skip == Py_None ? NULL : Py_NewRef(skip);
    self->last_code = NULL;
    self->last_list = NULL;
    self->prev_code = NULL;
    self->prev_list = NULL;
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
    Py_VISIT(self->prev_code);
    Py_VISIT(self->prev_list);
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
    Py_CLEAR(self->prev_code);
    Py_CLEAR(self->prev_list);
    self->vm_plain = 0;
    Py_CLEAR(self->vm_type);
    Py_CLEAR(self->sites);
    Py_CLEAR(self->vm);
    Py_CLEAR(self->tracer);
    Py_CLEAR(self->missing);
    Py_CLEAR(self->out_of_gas);
    Py_CLEAR(self->failed);
    Py_CLEAR(self->disable);
    self->sink_api = NULL;
    self->sink = NULL;
    self->line_start_api = NULL;
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
    bt_free_instance((PyObject *)self);
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

static PyObject *
hook_get_sink(InstructionHook *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->sink_api != NULL ? self->sink : Py_None);
}

static PyGetSetDef hook_getset[] = {
    {"op_line", (getter)hook_get_op_line, NULL, "op_line(event, gas, depth), or None.", NULL},
    {"sink", (getter)hook_get_sink, NULL,
     "The sink whose C entry takes op_line's calls (events/csrc/sink.h), or None.", NULL},
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

/* -- Blocks: gas by basic blocks (``call`` level) ---------------------------
 *
 * Blocks(meter, tables, fallback, thread) is what ``vm.hook.PyBlocks`` is (the
 * reference; its docstring says how it counts), in C: the BRANCH and JUMP
 * callback of the code objects in ``tables`` (id(code) -> their
 * ``vm.sites.block_counts``, native uint32 per 2-byte unit), and what the call
 * hooks (CallHook's ``blocks``) and the stepper's Python callbacks call at a
 * start, a return, an exception and a stop. */

typedef struct {
    PyObject *code;   /* strong */
    PyObject *counts; /* strong: bytes of uint32 */
    long long pos;
} BlockFrame;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *meter;
    PyObject *tables;
    PyObject *fallback;
    unsigned long thread;
    BlockFrame *stack;
    Py_ssize_t depth;
    Py_ssize_t cap;
} Blocks;

static void
blocks_charge(Blocks *self, BlockFrame *top, long long upto)
{
    const uint32_t *n = (const uint32_t *)PyBytes_AS_STRING(top->counts);
    long long last = (long long)(PyBytes_GET_SIZE(top->counts) / 4) - 1;
    if (last < 0) {
        return;
    }
    long long hi = upto / 2 + 1, lo = top->pos / 2;
    hi = hi < 0 ? 0 : (hi > last ? last : hi);
    lo = lo < 0 ? 0 : (lo > last ? last : lo);
    if (n[hi] > n[lo]) {
        ((Meter *)self->meter)->used += n[hi] - n[lo];
    }
    if (upto + 2 > top->pos) {
        top->pos = upto + 2;
    }
}

static int
blocks_push(Blocks *self, PyObject *code, long long pos)
{
    PyObject *key = PyLong_FromVoidPtr(code);
    if (key == NULL) {
        return -1;
    }
    PyObject *counts = PyDict_GetItemWithError(self->tables, key);
    Py_DECREF(key);
    if (counts == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyBytes_CheckExact(counts)) {
        PyErr_SetString(PyExc_TypeError, "Blocks: a table must be bytes");
        return -1;
    }
    if (self->depth == self->cap) {
        Py_ssize_t cap = self->cap < 16 ? 16 : self->cap * 2;
        BlockFrame *grown = PyMem_Realloc(self->stack, (size_t)cap * sizeof(BlockFrame));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->stack = grown;
        self->cap = cap;
    }
    BlockFrame *top = &self->stack[self->depth++];
    top->code = Py_NewRef(code);
    top->counts = Py_NewRef(counts);
    top->pos = pos;
    return 0;
}

static void
blocks_pop(Blocks *self)
{
    BlockFrame *top = &self->stack[--self->depth];
    Py_DECREF(top->code);
    Py_DECREF(top->counts);
}

/* Charge the innermost frame through where it stands: its frame found from
 * `frame` (borrowed, may be NULL) outwards. */
static void
blocks_flush(Blocks *self, PyFrameObject *frame)
{
    if (self->depth == 0 || frame == NULL) {
        return;
    }
    BlockFrame *top = &self->stack[self->depth - 1];
    PyFrameObject *f = (PyFrameObject *)Py_NewRef(frame);
    while (f != NULL) {
        PyCodeObject *code = PyFrame_GetCode(f);
        int same = (PyObject *)code == top->code;
        Py_DECREF(code);
        if (same) {
            int lasti = PyFrame_GetLasti(f);
            if (lasti >= 0) {
                blocks_charge(self, top, lasti);
            }
            Py_DECREF(f);
            return;
        }
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
}

/* A frame of in-scope `code` starts below `caller` (borrowed, may be NULL),
 * counted from `pos` on. */
static int
blocks_enter(Blocks *self, PyObject *code, PyFrameObject *caller, long long pos)
{
    blocks_flush(self, caller);
    return blocks_push(self, code, pos);
}

/* The frame of `code` returns at `offset` (or unwinds): charged, popped. */
static void
blocks_leave(Blocks *self, PyObject *code, long long offset)
{
    if (self->depth > 0 && self->stack[self->depth - 1].code == code) {
        blocks_charge(self, &self->stack[self->depth - 1], offset);
        blocks_pop(self);
    }
}

static PyObject *
blocks_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Blocks *self = (Blocks *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 3 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "Blocks takes exactly 3 positional arguments");
        return NULL;
    }
    if (self->depth == 0 || self->stack[self->depth - 1].code != args[0]
        || PyThread_get_thread_ident() != self->thread || !PyLong_CheckExact(args[1])
        || !PyLong_CheckExact(args[2])) {
        return PyObject_Vectorcall(self->fallback, args, 3, NULL);
    }
    long long src = PyLong_AsLongLong(args[1]), dest = PyLong_AsLongLong(args[2]);
    if ((src == -1 || dest == -1) && PyErr_Occurred()) {
        return NULL;
    }
    BlockFrame *top = &self->stack[self->depth - 1];
    blocks_charge(self, top, src);
    top->pos = dest;
    Py_RETURN_NONE;
}

static PyObject *
blocks_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"meter", "tables", "fallback", "thread", NULL};
    PyObject *meter, *tables, *fallback;
    unsigned long thread;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!Ok:Blocks", kwlist, &meter, &PyDict_Type,
                                     &tables, &fallback, &thread)) {
        return NULL;
    }
    chook_state *st = PyType_GetModuleState(type);
    if (st == NULL) {
        return NULL;
    }
    if (!PyObject_TypeCheck(meter, (PyTypeObject *)st->meter_type)) {
        PyErr_SetString(PyExc_TypeError, "Blocks: meter must be a Meter");
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "Blocks: fallback must be callable");
        return NULL;
    }
    Blocks *self = (Blocks *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = blocks_vectorcall;
    self->meter = Py_NewRef(meter);
    self->tables = Py_NewRef(tables);
    self->fallback = Py_NewRef(fallback);
    self->thread = thread;
    self->stack = NULL;
    self->depth = self->cap = 0;
    return (PyObject *)self;
}

static int
blocks_traverse(Blocks *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->meter);
    Py_VISIT(self->tables);
    Py_VISIT(self->fallback);
    for (Py_ssize_t i = 0; i < self->depth; i++) {
        Py_VISIT(self->stack[i].code);
        Py_VISIT(self->stack[i].counts);
    }
    return 0;
}

static int
blocks_clear_refs(Blocks *self)
{
    while (self->depth > 0) {
        blocks_pop(self);
    }
    Py_CLEAR(self->meter);
    Py_CLEAR(self->tables);
    Py_CLEAR(self->fallback);
    return 0;
}

static void
blocks_dealloc(Blocks *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    blocks_clear_refs(self);
    PyMem_Free(self->stack);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int
blocks_ready(Blocks *self)
{
    if (self->meter == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Blocks was cleared");
        return -1;
    }
    return 0;
}

/* The (code, offset) arguments of push, charge and leave: 0 and *offset set,
 * or -1 with an exception. */
static int
code_offset_args(Blocks *self, PyObject *const *args, Py_ssize_t nargs, const char *usage,
                 long long *offset)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    if (blocks_ready(self) < 0) {
        return -1;
    }
    *offset = PyLong_AsLongLong(args[1]);
    return *offset == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *
blocks_m_push(Blocks *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long pos;
    if (code_offset_args(self, args, nargs, "push(code, pos)", &pos) < 0
        || blocks_push(self, args[0], pos) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyFrameObject *
frame_arg(PyObject *arg)
{
    return PyFrame_Check(arg) ? (PyFrameObject *)arg : NULL;
}

static PyObject *
blocks_m_enter(Blocks *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || blocks_ready(self) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "enter(code, caller, pos)");
        }
        return NULL;
    }
    long long pos = PyLong_AsLongLong(args[2]);
    if ((pos == -1 && PyErr_Occurred()) || blocks_enter(self, args[0], frame_arg(args[1]), pos) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
blocks_m_flush(Blocks *self, PyObject *frame)
{
    if (blocks_ready(self) < 0) {
        return NULL;
    }
    blocks_flush(self, frame_arg(frame));
    Py_RETURN_NONE;
}

static PyObject *
blocks_m_charge(Blocks *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long offset;
    if (code_offset_args(self, args, nargs, "charge(code, offset)", &offset) < 0) {
        return NULL;
    }
    if (self->depth > 0 && self->stack[self->depth - 1].code == args[0]) {
        blocks_charge(self, &self->stack[self->depth - 1], offset);
    }
    Py_RETURN_NONE;
}

static PyObject *
blocks_m_leave(Blocks *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long offset;
    if (code_offset_args(self, args, nargs, "leave(code, offset)", &offset) < 0) {
        return NULL;
    }
    blocks_leave(self, args[0], offset);
    Py_RETURN_NONE;
}

static PyObject *
blocks_m_clear(Blocks *self, PyObject *Py_UNUSED(ignored))
{
    while (self->depth > 0) {
        blocks_pop(self);
    }
    Py_RETURN_NONE;
}

static PyObject *
blocks_get_stack(Blocks *self, void *Py_UNUSED(closure))
{
    PyObject *list = PyList_New(self->depth);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->depth; i++) {
        PyObject *item = Py_BuildValue("(OL)", self->stack[i].code, self->stack[i].pos);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyMethodDef blocks_methods[] = {
    {"push", (PyCFunction)(void (*)(void))blocks_m_push, METH_FASTCALL, NULL},
    {"enter", (PyCFunction)(void (*)(void))blocks_m_enter, METH_FASTCALL, NULL},
    {"flush", (PyCFunction)blocks_m_flush, METH_O, NULL},
    {"charge", (PyCFunction)(void (*)(void))blocks_m_charge, METH_FASTCALL, NULL},
    {"leave", (PyCFunction)(void (*)(void))blocks_m_leave, METH_FASTCALL, NULL},
    {"clear", (PyCFunction)blocks_m_clear, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef blocks_members[] = {
    {"meter", Py_T_OBJECT_EX, offsetof(Blocks, meter), Py_READONLY, NULL},
    {"tables", Py_T_OBJECT_EX, offsetof(Blocks, tables), Py_READONLY, NULL},
    {"thread", Py_T_ULONG, offsetof(Blocks, thread), Py_READONLY, NULL},
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(Blocks, vectorcall), Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef blocks_getset[] = {
    {"frames", (getter)blocks_get_stack, NULL, "[(code, pos)], innermost last.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(blocks_doc,
"Blocks(meter, tables, fallback, thread)\n"
"--\n\n"
"Gas by basic blocks at call level: blocktrace.vm.hook.PyBlocks in C.");

static PyType_Slot blocks_slots[] = {
    {Py_tp_new, blocks_new},
    {Py_tp_dealloc, blocks_dealloc},
    {Py_tp_traverse, blocks_traverse},
    {Py_tp_clear, blocks_clear_refs},
    {Py_tp_call, hook_tp_call},
    {Py_tp_methods, blocks_methods},
    {Py_tp_members, blocks_members},
    {Py_tp_getset, blocks_getset},
    {Py_tp_doc, (void *)blocks_doc},
    {0, NULL},
};

static PyType_Spec blocks_spec = {
    .name = "blocktrace.vm._chook.Blocks",
    .basicsize = sizeof(Blocks),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = blocks_slots,
};

/* -- CallHook: calls and returns ------------------------------------------
 *
 * CallHook(kind, vm, meter, entries, fallback, failed, *, line=None, render=None,
 * room=0, thread=0, max_str=200, values=True, outside=None, disable=None, blocks=None) is the PY_START (kind 0), PY_RETURN (kind 1),
 * PY_RESUME (kind 2) or PY_YIELD (kind 3) callback of the stepper's common case: one thread, a tracer whose call and
 * return lines the hook may write itself (``line``: the line writer's
 * ``line(body)``) or nobody listening (``line`` None: only the depth is kept).
 * ``entries`` maps id(code) -> (call event, call prefix, call suffix, code
 * index), filled by the stepper when a code object's first call went through
 * ``fallback`` (the stepper's Python callback for the event, called with the
 * same arguments whenever the hook does not handle an event: a code object
 * not in ``entries``, another thread, the program in the room lent to the
 * callbacks, depth 1 or less at a return, a gas count past 2**63).  ``outside``
 * (kind 0, with ``disable``): the scope's decisions by file name; a code object not
 * in ``entries`` whose file is decided out of scope gets ``disable`` at once, as
 * the stepper's ``_learn`` would answer (no fallback call).
 *
 * A resume (kind 2) is a start whose entries hold the code's "resume" call
 * event and pieces (filled on its first resume through the fallback); a yield
 * (kind 3) a return whose line says "yield" (a sink taking returns as values,
 * api->ret, has no kind for it: its yields go to the fallback).  So a generator
 * or coroutine that suspends and resumes costs no Python call and no object.
 *
 * Start, as Stepper._on_start's common case:   Return:
 *     depth += 1                                   line(return_body(depth, index,
 *     line(call_body(prefix, depth, suffix))           offset, gas, render(value)))
 *                                                  depth -= 1 (also when line failed)
 * A failure of line or render goes to failed(event or None, code, offset,
 * value, exc) as the stepper's except block would (the line's depth as it was).
 *
 * The return value is rendered here for None, bool, int (|v| < 2**63) and str
 * (the renderer's text: repr of at most max_str characters, as JSON) exactly as
 * blocktrace.tracers.render.Renderer.render + msgspec encode it; any other value
 * by ``render(value) -> bytes`` (the stepper's renderer and encoder).  values
 * False: a tracer that records no return values -- nothing rendered, return
 * lines without their value member (callline_return's value NULL). */

#include "callline.h"

#define CALLBACK_ROOM 2 /* blocktrace.tracers.depth.CALLBACK_ROOM */
#define RENDER_ROOM 32  /* frames a Python render of a return value may want */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    chook_state *st;
    int kind; /* 0: PY_START, 1: PY_RETURN, 2: PY_RESUME, 3: PY_YIELD */
    PyObject *kind_name; /* failed's event for a return line: None, or "yield" */
    PyObject *vm;
    PyObject *meter;
    PyObject *entries;
    PyObject *fallback;
    PyObject *failed;
    PyObject *line;   /* NULL: nobody listens */
    /* line's C entry when it is a sink's line (events/csrc/sink.h), else NULL:
     * then api->line takes the bodies, or api->call/ret the values */
    const bt_sink_api *sink_api;
    PyObject *sink; /* line's self (line holds it) */
    PyObject *render; /* NULL: every value rendered here or not at all */
    int *room;        /* the starting thread's frames left, or NULL */
    unsigned long thread;
    Py_ssize_t max_str;
    int values; /* 0: return lines without a value member, nothing rendered */
    /* a one-entry cache of entries (strong references), as InstructionHook's:
     * entries is watched, last_epoch 0 when it could not be */
    PyObject *last_code;
    PyObject *last_entry;
    uint64_t last_epoch;
    /* kind 0: filename -> scope decision (the stepper's scope's, per process),
     * and what a code object decided out of scope by its file is answered
     * (sys.monitoring.DISABLE) without the fallback; NULL: always the fallback */
    PyObject *outside;
    PyObject *disable;
    /* NULL, or the run's Blocks (gas by basic blocks): a start settles the
     * innermost counted frame and pushes its own, a return charges and pops */
    Blocks *blocks;
} CallHook;

static PyObject *
callhook_fallback(CallHook *self, PyObject *const *args, size_t nargs)
{
    return PyObject_Vectorcall(self->fallback, args, nargs, NULL);
}

/* failed(event, code, offset, value, exc) with exc the exception being raised,
 * as call_failed does; 0, or -1 with failed's exception set.  Not inlined: an error
 * path. */
static Py_NO_INLINE int
callhook_failed(CallHook *self, PyObject *event, PyObject *const *args, PyObject *value)
{
    PyObject *before[4] = {event, args[0], args[1], value};
    return call_in_except(self->failed, before, 4, "CallHook:");
}

/* vm.depth as a C long long: 0 and *out set, 1 when it is not a small exact
 * int (the caller falls back), -1 on error. */
static int
callhook_depth(CallHook *self, long long *out)
{
    PyObject *depth = get_attr(self->vm, self->st->str_depth);
    if (depth == NULL) {
        return -1;
    }
    int fast = 0;
    if (PyLong_CheckExact(depth)) {
        int overflow;
        long long d = PyLong_AsLongLongAndOverflow(depth, &overflow);
        fast = overflow == 0 && d > -(1LL << 40) && d < (1LL << 40);
        *out = d;
    }
    Py_DECREF(depth);
    return fast ? 0 : 1;
}

static int
callhook_set_depth(CallHook *self, long long depth)
{
    PyObject *value = PyLong_FromLongLong(depth);
    if (value == NULL) {
        return -1;
    }
    int done = set_attr(self->vm, self->st->str_depth, value);
    Py_DECREF(value);
    return done;
}

/* entries[id(code)], borrowed (NULL without an exception: absent). */
static PyObject *
callhook_entry(CallHook *self, PyObject *code)
{
    uint64_t now = load_epoch(&cache_epoch);
    if (self->last_code == code && self->last_epoch == now) {
        return self->last_entry;
    }
    PyObject *key = PyLong_FromVoidPtr(code);
    if (key == NULL) {
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(self->entries, key);
    Py_DECREF(key);
    if (entry != NULL && (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 4)) {
        PyErr_SetString(PyExc_TypeError, "CallHook: an entry must be a 4-tuple");
        return NULL;
    }
    if (entry != NULL && self->last_epoch != 0) {
        PyObject *old_code = self->last_code, *old_entry = self->last_entry;
        self->last_code = Py_NewRef(code);
        self->last_entry = Py_NewRef(entry);
        self->last_epoch = now;
        Py_XDECREF(old_code);
        Py_XDECREF(old_entry);
    }
    return entry;
}

/* A call line (`pre` not NULL: callline_call) or a return line (callline_return
 * of depth, code, pc, gas and the rendered value v) of at most `room` bytes,
 * handed to line: through the sink's C entry from a buffer of ours, else as a
 * bytes object to the callable.  None, or NULL with an exception. */
static PyObject *
callhook_line(CallHook *self, size_t room, const char *pre, size_t pre_len, long long depth,
              const char *v_or_suf, size_t v_or_suf_len, long long code, long long pc,
              long long gas)
{
    char small[512];
    PyObject *bytes = NULL;
    char *start;
    int own = self->sink_api != NULL && self->sink_api->line != NULL;
    if (own) {
        start = room <= sizeof small ? small : PyMem_Malloc(room);
        if (start == NULL) {
            return PyErr_NoMemory();
        }
    }
    else {
        bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)room);
        if (bytes == NULL) {
            return NULL;
        }
        start = PyBytes_AS_STRING(bytes);
    }
    char *end = pre != NULL
        ? callline_call(start, pre, pre_len, depth, v_or_suf, v_or_suf_len)
        : callline_return(start, self->kind == 3, depth, code, pc, gas, v_or_suf, v_or_suf_len);
    PyObject *r;
    if (own) {
        int done = self->sink_api->line(self->sink, start, (size_t)(end - start));
        if (start != small) {
            PyMem_Free(start);
        }
        r = done < 0 ? NULL : Py_NewRef(Py_None);
    }
    else {
        r = _PyBytes_Resize(&bytes, end - start) < 0 ? NULL : PyObject_CallOneArg(self->line, bytes);
        Py_XDECREF(bytes);
    }
    return r;
}

static PyObject *
callhook_start(CallHook *self, PyObject *const *args)
{
    /* Stepper._on_start refuses below CALLBACK_ROOM - 1 frames left, counted in
     * its own frame: one fewer than here, where no frame was pushed. */
    if ((self->room != NULL && *self->room < CALLBACK_ROOM)
        || PyThread_get_thread_ident() != self->thread) {
        return callhook_fallback(self, args, 2);
    }
    PyObject *entry = callhook_entry(self, args[0]);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        if (self->outside != NULL && PyCode_Check(args[0])) {
            PyObject *decided = PyDict_GetItemWithError(
                self->outside, ((PyCodeObject *)args[0])->co_filename);
            if (decided == Py_False) { /* out of scope: Stepper._learn's answer */
                return Py_NewRef(self->disable);
            }
            if (decided == NULL && PyErr_Occurred()) {
                return NULL;
            }
        }
        return callhook_fallback(self, args, 2);
    }
    long long depth;
    int got = callhook_depth(self, &depth);
    if (got != 0) {
        return got < 0 ? NULL : callhook_fallback(self, args, 2);
    }
    Meter *m = (Meter *)self->meter;
    const bt_sink_api *api = self->sink_api;
    if (api != NULL && api->call != NULL
        && (m->used > m->limit || m->limit - m->used > (unsigned long long)LLONG_MAX)) {
        return callhook_fallback(self, args, 2); /* gas does not fit: the event in Python */
    }
    if (self->blocks != NULL) {
        PyFrameObject *now = PyEval_GetFrame(); /* the frame starting (borrowed) */
        PyFrameObject *caller = now != NULL ? PyFrame_GetBack(now) : NULL;
        int pushed = blocks_enter(self->blocks, args[0], caller, 0);
        Py_XDECREF(caller);
        if (pushed < 0) {
            return NULL;
        }
    }
    Py_INCREF(entry);
    PyObject *result = NULL;
    depth += 1;
    if (callhook_set_depth(self, depth) < 0) {
        goto done;
    }
    if (self->line == NULL) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *r;
    if (api != NULL && api->call != NULL) {
        int called = api->call(self->sink, PyTuple_GET_ITEM(entry, 0),
                               (long long)(m->limit - m->used), depth);
        r = called < 0 ? NULL : Py_NewRef(Py_None);
    }
    else {
        PyObject *pre = PyTuple_GET_ITEM(entry, 1);
        PyObject *suf = PyTuple_GET_ITEM(entry, 2);
        if (!PyBytes_CheckExact(pre) || !PyBytes_CheckExact(suf)) {
            PyErr_SetString(PyExc_TypeError, "CallHook: call pieces must be bytes");
            goto done;
        }
        size_t pre_len = (size_t)PyBytes_GET_SIZE(pre), suf_len = (size_t)PyBytes_GET_SIZE(suf);
        r = callhook_line(self, pre_len + suf_len + 24, PyBytes_AS_STRING(pre), pre_len,
                          depth, PyBytes_AS_STRING(suf), suf_len, 0, 0, 0);
    }
    if (r == NULL) {
        if (callhook_failed(self, PyTuple_GET_ITEM(entry, 0), args, Py_None) < 0) {
            goto done;
        }
    }
    else {
        Py_DECREF(r);
    }
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(entry);
    return result;
}

/* The JSON of the renderer's text of an exact str: repr(s) (s of at most
 * max_str characters, and the repr within max_str * 4), escaped as msgspec
 * escapes a str.  A new bytes object, NULL without an exception when the value
 * is not one this renders exactly, NULL with one on error. */
static PyObject *
render_str(CallHook *self, PyObject *s)
{
    if (PyUnicode_GET_LENGTH(s) > self->max_str) {
        return NULL;
    }
    PyObject *text = PyObject_Repr(s); /* unicode_repr: no program code */
    if (text == NULL) {
        return NULL;
    }
    PyObject *out = NULL;
    Py_ssize_t n;
    const char *u = NULL;
    if (PyUnicode_GET_LENGTH(text) <= self->max_str * 4) {
        u = PyUnicode_AsUTF8AndSize(text, &n);
    }
    if (u == NULL) {
        goto done; /* too long (truncated by the renderer), or an error */
    }
    Py_ssize_t extra = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c < 0x20) {
            goto done; /* repr never leaves these; not ours to spell */
        }
        extra += c == '"' || c == '\\';
    }
    out = PyBytes_FromStringAndSize(NULL, n + extra + 2);
    if (out == NULL) {
        goto done;
    }
    char *o = PyBytes_AS_STRING(out);
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = u[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
        }
        *o++ = c;
    }
    *o = '"';
done:
    Py_DECREF(text);
    return out;
}

/* The rendered value as JSON: in `buf` (returns its length, >= 0) for None,
 * bools and ints; else in *obj (a new bytes object; returns -2); -3 when the
 * Python render would be needed near the recursion limit; -1 on error. */
static Py_ssize_t
render_value(CallHook *self, PyObject *value, char *buf, PyObject **obj)
{
    if (value == Py_None) {
        memcpy(buf, "null", 4);
        return 4;
    }
    if (value == Py_True) {
        memcpy(buf, "true", 4);
        return 4;
    }
    if (value == Py_False) {
        memcpy(buf, "false", 5);
        return 5;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow == 0 && v != LLONG_MIN) {
            return callline_dec(buf, v) - buf;
        }
    }
    else if (PyUnicode_CheckExact(value)) {
        *obj = render_str(self, value);
        if (*obj != NULL) {
            return -2;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    if (self->render == NULL) {
        PyErr_SetString(PyExc_TypeError, "CallHook: no render for this value");
        return -1;
    }
    if (self->room != NULL && *self->room < RENDER_ROOM) {
        return -3; /* near the recursion limit: the stepper's Python path, which lends room */
    }
    *obj = PyObject_CallOneArg(self->render, value);
    if (*obj == NULL) {
        return -1;
    }
    if (!PyBytes_Check(*obj)) {
        Py_CLEAR(*obj);
        PyErr_SetString(PyExc_TypeError, "CallHook: render must return bytes");
        return -1;
    }
    return -2;
}

static PyObject *
callhook_return(CallHook *self, PyObject *const *args)
{
    PyObject *value = args[2];
    if (PyThread_get_thread_ident() != self->thread
        || (self->kind == 3 && self->sink_api != NULL && self->sink_api->ret != NULL)) {
        return callhook_fallback(self, args, 3);
    }
    long long depth;
    int got = callhook_depth(self, &depth);
    if (got != 0) {
        return got < 0 ? NULL : callhook_fallback(self, args, 3);
    }
    Meter *m = (Meter *)self->meter;
    if (depth <= 1 || m->used > m->limit || m->limit - m->used > (unsigned long long)LLONG_MAX
        || !PyLong_CheckExact(args[1])) {
        return callhook_fallback(self, args, 3);
    }
    PyObject *entry = callhook_entry(self, args[0]);
    if (entry == NULL) {
        return PyErr_Occurred() ? NULL : callhook_fallback(self, args, 3);
    }
    if (self->blocks != NULL) {
        long long at = PyLong_AsLongLong(args[1]);
        if (at == -1 && PyErr_Occurred()) {
            return NULL;
        }
        blocks_leave(self->blocks, args[0], at);
    }
    Py_INCREF(entry);
    PyObject *result = NULL;
    if (self->line != NULL) {
        PyObject *index = PyTuple_GET_ITEM(entry, 3);
        long long code = PyLong_Check(index) ? PyLong_AsLongLong(index) : -1;
        long long pc = PyLong_AsLongLong(args[1]);
        if ((code == -1 || pc == -1) && PyErr_Occurred()) {
            goto done;
        }
        long long gas = (long long)(m->limit - m->used);
        PyObject *r = NULL;
        if (self->sink_api != NULL && self->sink_api->ret != NULL) {
            int done = self->sink_api->ret(self->sink, code, pc, value, gas, depth);
            r = done < 0 ? NULL : Py_NewRef(Py_None);
        }
        else if (!self->values) {
            r = callhook_line(self, CALLLINE_RETURN_FIXED, NULL, 0, depth, NULL, 0, code, pc, gas);
        }
        else {
            char small[24];
            PyObject *rendered = NULL;
            Py_ssize_t n = render_value(self, value, small, &rendered);
            if (n == -3) {
                Py_DECREF(entry);
                return callhook_fallback(self, args, 3);
            }
            if (n != -1) {
                const char *v = n >= 0 ? small : PyBytes_AS_STRING(rendered);
                size_t v_len = n >= 0 ? (size_t)n : (size_t)PyBytes_GET_SIZE(rendered);
                r = callhook_line(self, CALLLINE_RETURN_FIXED + v_len, NULL, 0, depth, v, v_len,
                                  code, pc, gas);
            }
            Py_XDECREF(rendered);
        }
        if (r == NULL) {
            /* the frame leaves even if the program's exception interrupts the tracer */
            int failed = callhook_failed(self, self->kind_name, args, value);
            if (callhook_set_depth(self, depth - 1) < 0 || failed < 0) {
                goto done;
            }
            result = Py_NewRef(Py_None);
            goto done;
        }
        Py_DECREF(r);
    }
    if (callhook_set_depth(self, depth - 1) < 0) {
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(entry);
    return result;
}

static PyObject *
callhook_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    CallHook *self = (CallHook *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    int starts = self->kind == 0 || self->kind == 2;
    Py_ssize_t want = starts ? 2 : 3;
    if (nargs != want || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "CallHook takes exactly %zd positional arguments (%zd given)",
                     want, nargs);
        return NULL;
    }
    if (self->vm == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CallHook was cleared");
        return NULL;
    }
    Py_INCREF(callable); /* held for the call: the stepper may re-register from inside it */
    PyObject *result = starts ? callhook_start(self, args) : callhook_return(self, args);
    Py_DECREF(callable);
    return result;
}

/* A CallHook of type (the module's) from its arguments, checked: CallHook() and
 * call_hooks() (the four a run needs, in one call) both make them here. */
static PyObject *
callhook_make(PyTypeObject *type, int kind, PyObject *vm, PyObject *meter, PyObject *entries,
              PyObject *fallback, PyObject *failed, PyObject *line, PyObject *render,
              unsigned long long room, unsigned long thread, Py_ssize_t max_str, int values,
              PyObject *outside, PyObject *disable, PyObject *blocks)
{
    if (!PyDict_Check(entries)) {
        PyErr_SetString(PyExc_TypeError, "CallHook: entries must be a dict");
        return NULL;
    }
    if (outside != Py_None && (!PyDict_CheckExact(outside) || disable == Py_None)) {
        PyErr_SetString(PyExc_TypeError, "CallHook: outside must be a dict, with disable");
        return NULL;
    }
    chook_state *st = PyType_GetModuleState(type);
    if (st == NULL) {
        return NULL;
    }
    if (kind < 0 || kind > 3) {
        PyErr_SetString(PyExc_ValueError,
                        "CallHook: kind is 0 (start), 1 (return), 2 (resume) or 3 (yield)");
        return NULL;
    }
    if (!PyObject_TypeCheck(meter, (PyTypeObject *)st->meter_type)) {
        PyErr_SetString(PyExc_TypeError, "CallHook: meter must be a Meter");
        return NULL;
    }
    if (blocks != Py_None && (!PyObject_TypeCheck(blocks, (PyTypeObject *)st->blocks_type)
                              || ((Blocks *)blocks)->meter != meter)) {
        PyErr_SetString(PyExc_TypeError, "CallHook: blocks must be a Blocks on the same meter");
        return NULL;
    }
    if (!PyCallable_Check(fallback) || !PyCallable_Check(failed)
        || (line != Py_None && !PyCallable_Check(line))
        || (render != Py_None && !PyCallable_Check(render))) {
        PyErr_SetString(PyExc_TypeError, "CallHook: fallback, failed, line, render must be callable");
        return NULL;
    }
    if (max_str < 0) {
        max_str = 0;
    }
    CallHook *self = (CallHook *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = callhook_vectorcall;
    self->st = st;
    self->kind = kind;
    self->kind_name = kind == 3 ? PyUnicode_InternFromString("yield") : Py_NewRef(Py_None);
    if (self->kind_name == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->vm = Py_NewRef(vm);
    self->meter = Py_NewRef(meter);
    self->entries = Py_NewRef(entries);
    self->fallback = Py_NewRef(fallback);
    self->failed = Py_NewRef(failed);
    self->line = line == Py_None ? NULL : Py_NewRef(line);
    self->sink = NULL;
    self->sink_api = bt_sink_of(self->line, 1, &self->sink);
    self->render = render == Py_None ? NULL : Py_NewRef(render);
    self->room = (int *)(uintptr_t)room;
    self->thread = thread;
    self->max_str = max_str;
    self->values = values;
    self->last_code = NULL;
    self->last_entry = NULL;
    self->last_epoch = 0;
    self->outside = kind == 0 && outside != Py_None ? Py_NewRef(outside) : NULL;
    self->disable = self->outside != NULL ? Py_NewRef(disable) : NULL;
    self->blocks = blocks != Py_None && kind != 3 ? (Blocks *)Py_NewRef(blocks) : NULL;
    if (st->watching_dicts) {
        if (PyDict_Watch(st->dict_watcher_id, entries) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        self->last_epoch = load_epoch(&cache_epoch);
    }
    return (PyObject *)self;
}


static PyObject *
callhook_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"kind", "vm", "meter", "entries", "fallback", "failed",
                             "line", "render", "room", "thread", "max_str", "values",
                             "outside", "disable", "blocks", NULL};
    int kind;
    PyObject *vm, *meter, *entries, *fallback, *failed;
    PyObject *line = Py_None, *render = Py_None, *outside = Py_None, *disable = Py_None;
    PyObject *blocks = Py_None;
    unsigned long long room = 0;
    unsigned long thread = 0;
    Py_ssize_t max_str = 200;
    int values = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iOOO!OO|$OOKknpOOO:CallHook", kwlist, &kind,
                                     &vm, &meter, &PyDict_Type, &entries, &fallback, &failed,
                                     &line, &render, &room, &thread, &max_str, &values,
                                     &outside, &disable, &blocks)) {
        return NULL;
    }
    return callhook_make(type, kind, vm, meter, entries, fallback, failed, line, render, room,
                         thread, max_str, values, outside, disable, blocks);
}

/* call_hooks(vm, meter, entries, resumes, on_start, on_return, on_resume, on_yield, failed,
 *            line, render, room, thread, max_str, values, outside, disable, blocks):
 * the stepper's four CallHooks of a run (kinds 0-3: start, return, resume, yield), as
 * CallHook(kind, vm, meter, entries -- resumes for kind 2 --, that kind's fallback,
 * failed, line=..., ...) four times would make them (outside and disable for kind 0
 * only, blocks for 0-2), from positional arguments in one call: a start makes them
 * while the program waits, and four calls with keywords cost it ~5 us more. */
static PyObject *
call_hooks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 18) {
        PyErr_Format(PyExc_TypeError, "call_hooks() takes 18 arguments (%zd given)", nargs);
        return NULL;
    }
    chook_state *st = PyModule_GetState(module);
    unsigned long long room = PyLong_AsUnsignedLongLong(args[11]);
    if (room == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long thread = PyLong_AsUnsignedLong(args[12]);
    if (thread == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_str = PyNumber_AsSsize_t(args[13], PyExc_OverflowError);
    if (max_str == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int values = PyObject_IsTrue(args[14]);
    if (values < 0) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)st->callhook_type;
    PyObject *hooks = PyTuple_New(4);
    if (hooks == NULL) {
        return NULL;
    }
    for (int kind = 0; kind < 4; kind++) {
        PyObject *hook = callhook_make(
            type, kind, args[0], args[1], kind == 2 ? args[3] : args[2], args[4 + kind], args[8],
            args[9], args[10], room, thread, max_str, values,
            kind == 0 ? args[15] : Py_None, kind == 0 ? args[16] : Py_None,
            kind == 3 ? Py_None : args[17]);
        if (hook == NULL) {
            Py_DECREF(hooks);
            return NULL;
        }
        PyTuple_SET_ITEM(hooks, kind, hook);
    }
    return hooks;
}

static int
callhook_traverse(CallHook *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->vm);
    Py_VISIT(self->meter);
    Py_VISIT(self->entries);
    Py_VISIT(self->fallback);
    Py_VISIT(self->failed);
    Py_VISIT(self->line);
    Py_VISIT(self->render);
    Py_VISIT(self->last_code);
    Py_VISIT(self->last_entry);
    Py_VISIT(self->kind_name);
    Py_VISIT(self->outside);
    Py_VISIT(self->disable);
    Py_VISIT(self->blocks);
    return 0;
}

static int
callhook_clear(CallHook *self)
{
    self->sink_api = NULL;
    self->sink = NULL;
    self->last_epoch = 0;
    Py_CLEAR(self->last_code);
    Py_CLEAR(self->last_entry);
    Py_CLEAR(self->vm);
    Py_CLEAR(self->meter);
    Py_CLEAR(self->entries);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->failed);
    Py_CLEAR(self->line);
    Py_CLEAR(self->render);
    Py_CLEAR(self->kind_name);
    Py_CLEAR(self->outside);
    Py_CLEAR(self->disable);
    Py_CLEAR(self->blocks);
    return 0;
}

static void
callhook_dealloc(CallHook *self)
{
    PyObject_GC_UnTrack(self);
    callhook_clear(self);
    bt_free_instance((PyObject *)self);
}

static PyObject *
callhook_get_sink(CallHook *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->sink_api != NULL ? self->sink : Py_None);
}

static PyGetSetDef callhook_getset[] = {
    {"sink", (getter)callhook_get_sink, NULL,
     "The sink whose C entry takes line's calls (events/csrc/sink.h), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef callhook_members[] = {
    {"entries", Py_T_OBJECT_EX, offsetof(CallHook, entries), Py_READONLY, NULL},
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(CallHook, vectorcall), Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(callhook_doc,
"CallHook(kind, vm, meter, entries, fallback, failed, *, line=None, render=None,\n"
"         room=0, thread=0, max_str=200, values=True, outside=None, disable=None,\n"
"         blocks=None)\n"
"--\n\n"
"The stepper's PY_START (kind 0), PY_RETURN (kind 1), PY_RESUME (kind 2) or\n"
"PY_YIELD (kind 3) callback in C for the common case (see the comment in blocktrace/vm/_chook.c).");

static PyType_Slot callhook_slots[] = {
    {Py_tp_new, callhook_new},
    {Py_tp_dealloc, callhook_dealloc},
    {Py_tp_traverse, callhook_traverse},
    {Py_tp_clear, callhook_clear},
    {Py_tp_call, hook_tp_call},
    {Py_tp_members, callhook_members},
    {Py_tp_getset, callhook_getset},
    {Py_tp_doc, (void *)callhook_doc},
    {0, NULL},
};

static PyType_Spec callhook_spec = {
    .name = "blocktrace.vm._chook.CallHook",
    .basicsize = sizeof(CallHook),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = callhook_slots,
};

/* -- ScopeFilter: exception events outside the traced code ----------------
 *
 * ScopeFilter(infos, fallback, vm, exit) is a RAISE, RERAISE, EXCEPTION_HANDLED,
 * PY_UNWIND or PY_THROW callback: those events cannot be turned off per code
 * object, so library code out of scope sends them on every exception it
 * raises and handles.  The filter calls ``fallback(code, offset, exc)`` (the
 * stepper's Python callback) only when id(code) is in ``infos`` (code in
 * scope), or when the stepper's callback would do something for code out of
 * scope too: ``exit`` 1 (RAISE) a SystemExit; ``exit`` 2 (EXCEPTION_HANDLED) a
 * SystemExit or ``exc is vm.exit_exception``.  Otherwise it returns None, as
 * the stepper's callback would after finding the code unknown. */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *infos;
    PyObject *fallback;
    PyObject *vm;
    PyObject *str_exit; /* interned "exit_exception" */
    int exit;
} ScopeFilter;

static PyObject *
filter_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ScopeFilter *self = (ScopeFilter *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 3 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "ScopeFilter takes exactly 3 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (self->infos == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ScopeFilter was cleared");
        return NULL;
    }
    int pass = 0;
    if (self->exit != 0) {
        PyObject *exc = args[2];
        pass = Py_IS_TYPE(exc, (PyTypeObject *)PyExc_SystemExit);
        if (!pass && self->exit == 2) {
            PyObject *leaving = PyObject_GetAttr(self->vm, self->str_exit);
            if (leaving == NULL) {
                return NULL;
            }
            pass = leaving == exc;
            Py_DECREF(leaving);
        }
    }
    if (!pass) {
        PyObject *key = PyLong_FromVoidPtr(args[0]);
        if (key == NULL) {
            return NULL;
        }
        pass = PyDict_Contains(self->infos, key);
        Py_DECREF(key);
        if (pass < 0) {
            return NULL;
        }
    }
    if (!pass) {
        Py_RETURN_NONE;
    }
    Py_INCREF(callable); /* held for the call, as the other hooks are */
    PyObject *result = PyObject_Vectorcall(self->fallback, args, 3, NULL);
    Py_DECREF(callable);
    return result;
}

static PyObject *
filter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"infos", "fallback", "vm", "exit", NULL};
    PyObject *infos, *fallback, *vm;
    int exit = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO|i:ScopeFilter", kwlist, &PyDict_Type,
                                     &infos, &fallback, &vm, &exit)) {
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "ScopeFilter: fallback must be callable");
        return NULL;
    }
    if (exit < 0 || exit > 2) {
        PyErr_SetString(PyExc_ValueError, "ScopeFilter: exit is 0, 1 or 2");
        return NULL;
    }
    PyObject *name = PyUnicode_InternFromString("exit_exception");
    if (name == NULL) {
        return NULL;
    }
    ScopeFilter *self = (ScopeFilter *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    self->vectorcall = filter_vectorcall;
    self->infos = Py_NewRef(infos);
    self->fallback = Py_NewRef(fallback);
    self->vm = Py_NewRef(vm);
    self->str_exit = name;
    self->exit = exit;
    return (PyObject *)self;
}

static int
filter_traverse(ScopeFilter *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->infos);
    Py_VISIT(self->fallback);
    Py_VISIT(self->vm);
    return 0;
}

static int
filter_clear(ScopeFilter *self)
{
    Py_CLEAR(self->infos);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->vm);
    Py_CLEAR(self->str_exit);
    return 0;
}

static void
filter_dealloc(ScopeFilter *self)
{
    PyObject_GC_UnTrack(self);
    filter_clear(self);
    bt_free_instance((PyObject *)self);
}

static PyMemberDef filter_members[] = {
    {"fallback", Py_T_OBJECT_EX, offsetof(ScopeFilter, fallback), Py_READONLY, NULL},
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(ScopeFilter, vectorcall), Py_READONLY,
     NULL},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(filter_doc,
"ScopeFilter(infos, fallback, vm, exit=0)\n"
"--\n\n"
"An exception-event callback that calls fallback(code, offset, exc) only for code\n"
"in scope (id(code) in infos) or a SystemExit the stepper keeps track of (see\n"
"blocktrace/vm/_chook.c).");

static PyType_Slot filter_slots[] = {
    {Py_tp_new, filter_new},
    {Py_tp_dealloc, filter_dealloc},
    {Py_tp_traverse, filter_traverse},
    {Py_tp_clear, filter_clear},
    {Py_tp_call, hook_tp_call},
    {Py_tp_members, filter_members},
    {Py_tp_doc, (void *)filter_doc},
    {0, NULL},
};

static PyType_Spec filter_spec = {
    .name = "blocktrace.vm._chook.ScopeFilter",
    .basicsize = sizeof(ScopeFilter),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = filter_slots,
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
    bt_free_instance((PyObject *)self);
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
    {"call_hooks", (PyCFunction)(void (*)(void))call_hooks, METH_FASTCALL,
     "call_hooks(vm, meter, entries, resumes, on_start, on_return, on_resume, on_yield, failed,\n"
     "           line, render, room, thread, max_str, values, outside, disable, blocks, /)\n--\n\n"
     "The stepper's four CallHooks of a run (start, return, resume, yield) in one call."},
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
    st->callhook_type = PyType_FromModuleAndSpec(module, &callhook_spec, NULL);
    st->filter_type = PyType_FromModuleAndSpec(module, &filter_spec, NULL);
    st->blocks_type = PyType_FromModuleAndSpec(module, &blocks_spec, NULL);
    if (st->hook_type == NULL || st->meter_type == NULL || st->callhook_type == NULL
        || st->filter_type == NULL || st->blocks_type == NULL
        || PyModule_AddObjectRef(module, "Blocks", st->blocks_type) < 0
        || PyModule_AddObjectRef(module, "ScopeFilter", st->filter_type) < 0
        || PyModule_AddObjectRef(module, "CallHook", st->callhook_type) < 0
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
    Py_VISIT(st->callhook_type);
    Py_VISIT(st->filter_type);
    Py_VISIT(st->blocks_type);
    return 0;
}

static int
chook_clear(PyObject *module)
{
    chook_state *st = PyModule_GetState(module);
    Py_CLEAR(st->hook_type);
    Py_CLEAR(st->meter_type);
    Py_CLEAR(st->callhook_type);
    Py_CLEAR(st->filter_type);
    Py_CLEAR(st->blocks_type);
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

/* logbridge._speedups: the common path of `logbridge._handler.capture_python`, compiled.

   `capture(run, record, extras=None)` runs on every logging call that reaches a RunHandler.
   For the common record it queues the very tuple `capture_python` would queue
   (`_logrecords.CAPTURED`, `_events.Captured`):

       (run_id, *CAPTURED, step, tags, problems, extras, count, *names, *values, *args)

   The common record: an exact `logging.LogRecord` whose `__dict__` holds a LogRecord's own
   attributes and the tagging keys only; a `str` message; message arguments that are a tuple
   of atoms (or none); no traceback; `metrics` absent or a `dict` of float, int, str or bool;
   and the run is the one `_handler._lane` remembers. Every other call goes, untouched, to
   `capture_python`, the reference implementation: tests/test_speedups.py checks that both
   queue the same tuples, and LOGBRIDGE_PURE_PYTHON=1 turns this module off.

   Safety: Python code can run in the middle of a call (a dict key's __eq__ during a lookup,
   a garbage collection's callbacks and finalizers at an allocation; they may log, change
   `_lane` or call `install`). So every object is held by a strong reference while it is
   used, the tuple is allocated last and filled with nothing that could run code, and its
   bounds are checked against what was allocated. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Set by `install`. */
static PyObject *record_type = NULL;     /* logging.LogRecord */
static PyObject *handler_globals = NULL; /* logbridge._handler's module dict (its `_lane`) */
static PyObject *fallback = NULL;        /* logbridge._handler.capture_python */
static PyObject *field_names = NULL;     /* _logrecords.CAPTURED, interned */
static Py_ssize_t base_size = 0;         /* len(LogRecord(...).__dict__) */

static PyObject *s_metrics, *s_tags, *s_step, *s_exc_info, *s_msg, *s_args, *s_lane,
    *s_accepting, *s_drain_queued, *s_put, *s_append, *empty_tuple;

/* The metric values taken as they are (`_handler._PLAIN_METRICS`). */
static inline int
plain_metric(PyObject *value)
{
    PyTypeObject *kind = Py_TYPE(value);
    return kind == &PyFloat_Type || kind == &PyLong_Type || kind == &PyUnicode_Type ||
           kind == &PyBool_Type;
}

/* Message arguments that cannot change (`_logrecords.IMMUTABLE`; nested tuples are left to
   `capture_python`). */
static inline int
atom(PyObject *value)
{
    PyTypeObject *kind = Py_TYPE(value);
    return kind == &PyUnicode_Type || kind == &PyLong_Type || kind == &PyFloat_Type ||
           kind == &PyBool_Type || value == Py_None || kind == &PyBytes_Type ||
           kind == &PyComplex_Type;
}

/* data[key] as a new reference; NULL with no exception set if absent. */
static inline PyObject *
lookup(PyObject *data, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(data, key);
    Py_XINCREF(value);
    return value;
}

static inline int
is_true_attribute(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* `Recorder.put`'s common case, as `capture_python` inlines it (`Recorder.fast_lane`). */
static int
enqueue(PyObject *lane, PyObject *captured)
{
    PyObject *recorder = PyTuple_GET_ITEM(lane, 2);
    PyObject *queue = PyTuple_GET_ITEM(lane, 3);
    int overflow;
    long long mark = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(lane, 4), &overflow);
    if (overflow) {
        mark = overflow > 0 ? LLONG_MAX : LLONG_MIN;
    }
    else if (mark == -1 && PyErr_Occurred()) {
        return -1;
    }
    Py_ssize_t queued = PyObject_Length(queue);
    if (queued < 0) {
        return -1;
    }
    int accepting = 0;
    if (queued < mark) {
        accepting = is_true_attribute(recorder, s_accepting);
        if (accepting < 0) {
            return -1;
        }
    }
    PyObject *result;
    if (accepting) {
        result = PyObject_CallMethodOneArg(queue, s_append, captured);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
        int still = is_true_attribute(recorder, s_accepting);
        if (still < 0) {
            return -1;
        }
        if (still) {
            return 0;
        }
        result = PyObject_CallMethodNoArgs(recorder, s_drain_queued);
    }
    else {
        result = PyObject_CallMethodOneArg(recorder, s_put, captured);
    }
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* The most fields `install` accepts (`_logrecords.CAPTURED` has 14). */
#define MAX_FIELDS 32

static PyObject *
capture(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "capture(run, record, extras=None, /)");
        return NULL;
    }
    if (fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "logbridge._speedups.install() was not called");
        return NULL;
    }
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        /* A legacy subinterpreter shares this module's state with the main interpreter. */
        PyErr_SetString(PyExc_RuntimeError, "logbridge._speedups runs in the main interpreter only");
        return NULL;
    }
    PyObject *run = args[0], *record = args[1];
    PyObject *extras = nargs == 3 ? args[2] : Py_None;
    /* Held for the call: code that runs in the middle of it may call `install` again. */
    PyObject *python = Py_NewRef(fallback), *names = Py_NewRef(field_names),
             *globals = Py_NewRef(handler_globals);
    PyObject *result = NULL, *data = NULL, *metrics = NULL, *tags = NULL, *step = NULL,
             *exc_info = NULL, *msg = NULL, *margs = NULL, *lane = NULL, *count = NULL,
             *captured = NULL;
    PyObject *fields[MAX_FIELDS] = {NULL};
    Py_ssize_t field_count = PyTuple_GET_SIZE(names);
    Py_ssize_t known = base_size, metric_count = 0;

    if ((PyObject *)Py_TYPE(record) != record_type) {
        goto slow;
    }
    data = PyObject_GenericGetDict(record, NULL);
    if (data == NULL) {
        goto done;
    }
    if (!PyDict_CheckExact(data)) {
        goto slow; /* a __dict__ replaced by a subclass, whose methods capture_python calls */
    }
    /* A lookup may run Python code (the __eq__ of a key whose hash matches), and so may
       fail: check after each one. */
#define LOOKUP(var, from, key)                      \
    do {                                            \
        var = PyDict_GetItemWithError(from, key);   \
        if (var == NULL && PyErr_Occurred()) {      \
            goto done;                              \
        }                                           \
        Py_XINCREF(var);                            \
    } while (0)
    LOOKUP(metrics, data, s_metrics);
    LOOKUP(tags, data, s_tags);
    LOOKUP(step, data, s_step);
    LOOKUP(exc_info, data, s_exc_info);
    LOOKUP(msg, data, s_msg);
    LOOKUP(margs, data, s_args);
    LOOKUP(lane, globals, s_lane);
    /* A tagging key set to None, or anything unusual, is capture_python's to handle. */
    if (metrics != NULL) {
        if (!PyDict_CheckExact(metrics)) {
            goto slow;
        }
        Py_ssize_t position = 0;
        PyObject *name, *value;
        while (PyDict_Next(metrics, &position, &name, &value)) {
            if (!plain_metric(value)) {
                goto slow; /* before any tuple exists: capture_python freezes such values */
            }
        }
        metric_count = PyDict_GET_SIZE(metrics);
        known++;
    }
    if (tags != NULL) {
        if (tags == Py_None) {
            goto slow;
        }
        known++;
    }
    if (step != NULL) {
        if (step == Py_None) {
            goto slow;
        }
        known++;
    }
    if (margs == Py_None) {
        Py_SETREF(margs, Py_NewRef(empty_tuple));
    }
    if (PyDict_GET_SIZE(data) != known || exc_info != Py_None || msg == NULL ||
        !PyUnicode_CheckExact(msg) || margs == NULL || !PyTuple_CheckExact(margs) ||
        lane == NULL || !PyTuple_CheckExact(lane) || PyTuple_GET_SIZE(lane) != 5 ||
        PyTuple_GET_ITEM(lane, 0) != run || !PyLong_CheckExact(PyTuple_GET_ITEM(lane, 4))) {
        goto slow;
    }
    Py_ssize_t arg_count = PyTuple_GET_SIZE(margs);
    for (Py_ssize_t i = 0; i < arg_count; i++) {
        if (!atom(PyTuple_GET_ITEM(margs, i))) {
            goto slow;
        }
    }
    for (Py_ssize_t i = 0; i < field_count; i++) {
        LOOKUP(fields[i], data, PyTuple_GET_ITEM(names, i));
        if (fields[i] == NULL) {
            goto slow; /* a LogRecord missing one of its attributes */
        }
    }
#undef LOOKUP
    if (tags != NULL && PyDict_CheckExact(tags)) {
        Py_SETREF(tags, PyDict_Copy(tags)); /* what was true at the call */
        if (tags == NULL) {
            goto done;
        }
    }
    if (metrics != NULL) {
        count = PyLong_FromSsize_t(metric_count);
        if (count == NULL) {
            goto done;
        }
    }
    Py_ssize_t size = 1 + field_count + 5 + 2 * metric_count + arg_count;
    captured = PyTuple_New(size); /* the last allocation: a collection may run code here */
    if (captured == NULL) {
        goto done;
    }
    if (metrics != NULL && PyDict_GET_SIZE(metrics) != metric_count) {
        goto slow; /* changed by that code (slow drops the empty tuple first) */
    }
    /* From here until the tuple is full nothing allocates or calls Python code, so nothing
       can see it half-built. */
    Py_ssize_t at = 0;
#define PUT(value)                                        \
    do {                                                  \
        PyTuple_SET_ITEM(captured, at, Py_NewRef(value)); \
        at++;                                             \
    } while (0)
    PUT(PyTuple_GET_ITEM(lane, 1));
    for (Py_ssize_t i = 0; i < field_count; i++) {
        PUT(fields[i]);
    }
    PUT(step != NULL ? step : Py_None);
    PUT(tags != NULL ? tags : Py_None);
    PUT(empty_tuple); /* problems */
    PUT(extras);
    PUT(count != NULL ? count : Py_None);
    if (metrics != NULL) {
        Py_ssize_t position = 0, names_at = at, values_at = at + metric_count;
        PyObject *name, *value;
        while (names_at < at + metric_count && PyDict_Next(metrics, &position, &name, &value)) {
            if (!plain_metric(value)) {
                goto slow;
            }
            PyTuple_SET_ITEM(captured, names_at, Py_NewRef(name));
            PyTuple_SET_ITEM(captured, values_at, Py_NewRef(value));
            names_at++;
            values_at++;
        }
        at = values_at;
    }
    for (Py_ssize_t i = 0; i < arg_count; i++) {
        PUT(PyTuple_GET_ITEM(margs, i));
    }
#undef PUT
    if (at != size) {
        goto slow; /* never queue a tuple with holes */
    }
    /* A tuple of atoms (and of untracked tuples) can be no part of a cycle: the collector
       untracks capture_python's at its first pass (_PyTuple_MaybeUntrack's rule: any other
       container, even an untracked dict, may later hold the tuple), and this one need not
       wait for it. */
    int may_cycle = 0;
    for (Py_ssize_t i = 0; i < size && !may_cycle; i++) {
        PyObject *item = PyTuple_GET_ITEM(captured, i);
        may_cycle = PyType_IS_GC(Py_TYPE(item)) &&
                    (!PyTuple_CheckExact(item) || PyObject_GC_IsTracked(item));
    }
    if (!may_cycle) {
        PyObject_GC_UnTrack(captured);
    }
    if (enqueue(lane, captured) == 0) {
        result = Py_NewRef(Py_None);
    }
    goto done;

slow:
    /* Gone before capture_python runs: no code may find a half-built tuple. Its items are
       held elsewhere too (fields, lane, metrics, margs), so dropping it runs no code. */
    Py_CLEAR(captured);
    result = PyObject_Vectorcall(python, args, (size_t)nargs, NULL);
done:
    Py_XDECREF(captured);
    Py_XDECREF(count);
    for (Py_ssize_t i = 0; i < field_count; i++) {
        Py_XDECREF(fields[i]);
    }
    Py_XDECREF(lane);
    Py_XDECREF(margs);
    Py_XDECREF(msg);
    Py_XDECREF(exc_info);
    Py_XDECREF(step);
    Py_XDECREF(tags);
    Py_XDECREF(metrics);
    Py_XDECREF(data);
    Py_DECREF(globals);
    Py_DECREF(names);
    Py_DECREF(python);
    return result;
}

static PyObject *
install(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *kind, *globals, *python_capture, *names;
    Py_ssize_t size;
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        /* Loaded by the main interpreter first, the module is shared, not loaded again. */
        PyErr_SetString(PyExc_ImportError, "logbridge._speedups runs in the main interpreter only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!OO!n:install", &PyType_Type, &kind, &PyDict_Type, &globals,
                          &python_capture, &PyTuple_Type, &names, &size)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(names) > MAX_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "install: too many field names");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "install: the field names must be str");
            return NULL;
        }
    }
    PyObject *interned = PyTuple_New(PyTuple_GET_SIZE(names));
    if (interned == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = Py_NewRef(PyTuple_GET_ITEM(names, i));
        PyUnicode_InternInPlace(&name);
        PyTuple_SET_ITEM(interned, i, name);
    }
    Py_XSETREF(record_type, Py_NewRef(kind));
    Py_XSETREF(handler_globals, Py_NewRef(globals));
    Py_XSETREF(field_names, interned);
    Py_XSETREF(fallback, Py_NewRef(python_capture));
    base_size = size;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"capture", (PyCFunction)(void (*)(void))capture, METH_FASTCALL,
     "capture(run, record, extras=None, /)\n--\n\n"
     "Queue a log record for a run: `capture_python`'s common path, compiled."},
    {"install", install, METH_VARARGS,
     "install(record_type, handler_globals, capture_python, field_names, base_size)\n--\n\n"
     "Tell `capture` what it mirrors (called once by logbridge._handler)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups = {
    PyModuleDef_HEAD_INIT,
    .m_name = "logbridge._speedups",
    .m_doc = "The compiled common path of logbridge._handler.capture_python.",
    .m_size = -1,
    .m_methods = methods,
};

#ifndef LOGBRIDGE_SOURCE_SHA256
#define LOGBRIDGE_SOURCE_SHA256 "" /* setup.py defines it */
#endif

PyMODINIT_FUNC
PyInit__speedups(void)
{
    /* Its state is the process's: other interpreters run capture_python. */
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError, "logbridge._speedups runs in the main interpreter only");
        return NULL;
    }
#define INTERN(var, text)                                     \
    if ((var = PyUnicode_InternFromString(text)) == NULL) { \
        return NULL;                                        \
    }
    INTERN(s_metrics, "metrics");
    INTERN(s_tags, "tags");
    INTERN(s_step, "step");
    INTERN(s_exc_info, "exc_info");
    INTERN(s_msg, "msg");
    INTERN(s_args, "args");
    INTERN(s_lane, "_lane");
    INTERN(s_accepting, "accepting");
    INTERN(s_drain_queued, "drain_queued");
    INTERN(s_put, "put");
    INTERN(s_append, "append");
#undef INTERN
    empty_tuple = PyTuple_New(0);
    if (empty_tuple == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups);
    if (module != NULL &&
        PyModule_AddStringConstant(module, "SOURCE_SHA256", LOGBRIDGE_SOURCE_SHA256) < 0) {
        Py_CLEAR(module);
    }
    return module;
}

#define PY_SSIZE_T_CLEAN
#include <Python.h>

int piwgate_answer(void);

static PyObject *answer(PyObject *self, PyObject *args) {
    return PyLong_FromLong(piwgate_answer());
}

static PyMethodDef methods[] = {
    {"answer", answer, METH_NOARGS, "The answer, from libpiwgate."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "piwtest_gate", NULL, -1, methods};

PyMODINIT_FUNC PyInit_piwtest_gate(void) { return PyModule_Create(&module); }

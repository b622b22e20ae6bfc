/* piwheels test package: add(a, b) in C; its build wants numpy, which is never there. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
piwtest_add(PyObject *self, PyObject *args)
{
    PyObject *a, *b;

    if (!PyArg_ParseTuple(args, "OO:add", &a, &b))
        return NULL;
    return PyNumber_Add(a, b);
}

static PyMethodDef piwtest_methods[] = {
    {"add", piwtest_add, METH_VARARGS, "add(a, b) -> a + b"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef piwtest_module = {
    PyModuleDef_HEAD_INIT, "piwtest_fail_import", "piwheels test extension", -1, piwtest_methods
};

PyMODINIT_FUNC
PyInit_piwtest_fail_import(void)
{
    return PyModule_Create(&piwtest_module);
}

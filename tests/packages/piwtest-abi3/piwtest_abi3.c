/* piwheels test package: add(a, b) in C, restricted to the limited API (Py_LIMITED_API comes
 * from setup.py, so the module builds as piwtest_abi3.abi3.so). */
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
    PyModuleDef_HEAD_INIT, "piwtest_abi3", "piwheels test extension (abi3)", -1, piwtest_methods
};

PyMODINIT_FUNC
PyInit_piwtest_abi3(void)
{
    return PyModule_Create(&piwtest_module);
}

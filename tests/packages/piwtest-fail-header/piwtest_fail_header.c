/* piwheels test package: the portaudio version, through a header that is not installed. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <portaudio.h>

static PyObject *
piwtest_version(PyObject *self, PyObject *args)
{
    return PyLong_FromLong(Pa_GetVersion());
}

static PyMethodDef piwtest_methods[] = {
    {"version", piwtest_version, METH_NOARGS, "version() -> portaudio's version number"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef piwtest_module = {
    PyModuleDef_HEAD_INIT, "piwtest_fail_header", "piwheels test extension", -1, piwtest_methods
};

PyMODINIT_FUNC
PyInit_piwtest_fail_header(void)
{
    return PyModule_Create(&piwtest_module);
}

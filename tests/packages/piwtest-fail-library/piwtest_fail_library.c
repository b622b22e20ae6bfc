/* piwheels test package: the portaudio version, from a library that is not installed.
 *
 * The prototype is written out here instead of coming from <portaudio.h>, so that compiling
 * succeeds whatever headers the machine has and only the link can fail. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

int Pa_GetVersion(void);

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
    PyModuleDef_HEAD_INIT, "piwtest_fail_library", "piwheels test extension", -1, piwtest_methods
};

PyMODINIT_FUNC
PyInit_piwtest_fail_library(void)
{
    return PyModule_Create(&piwtest_module);
}

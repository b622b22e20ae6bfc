/* piwheels test package: the portaudio version, from a library pkg-config cannot find.
 *
 * The build stops at pkg-config, before this is compiled; the prototype is written out here
 * anyway, so that the source does not depend on <portaudio.h> being found. */
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
    PyModuleDef_HEAD_INIT, "piwtest_fail_pkgconfig", "piwheels test extension", -1, piwtest_methods
};

PyMODINIT_FUNC
PyInit_piwtest_fail_pkgconfig(void)
{
    return PyModule_Create(&piwtest_module);
}

// Python module entry of the irkernels CUDA extension (``irkernels._C`` when built by setup.py).
// The ops themselves register with the dispatcher (TORCH_LIBRARY_FRAGMENT(irkernels, ...)) in
// their own files and are called as ``torch.ops.irkernels.<op>``; this file only gives the shared
// object a module init function, so it stays free of pybind11 and the heavy torch headers.
#include <Python.h>

#define IRK_CAT_(a, b) a##b
#define IRK_CAT(a, b) IRK_CAT_(a, b)
#define IRK_STR_(a) #a
#define IRK_STR(a) IRK_STR_(a)

static PyModuleDef irk_module = {
    PyModuleDef_HEAD_INIT, IRK_STR(TORCH_EXTENSION_NAME),
    "irkernels CUDA ops, registered as torch.ops.irkernels.*", -1, nullptr};

PyMODINIT_FUNC IRK_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&irk_module); }

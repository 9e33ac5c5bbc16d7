// prpc-host's Python mode, a module the host loads only when a configuration names an `app`:
// it embeds the interpreter the package was built for and hands the application to
// prpc._hosting.serve(), which imports the prpc extension (there is no second copy of the
// bindings here). Keeping it out of prpc-host keeps the host free of libpython otherwise.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdio>
#include <string>

#ifndef PRPC_PYTHON_EXECUTABLE
#define PRPC_PYTHON_EXECUTABLE ""
#endif

namespace {

void print_python_error(const char* what) {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  std::string text = "unknown error";
  if (value != nullptr) {
    if (PyObject* s = PyObject_Str(value)) {
      if (const char* c = PyUnicode_AsUTF8(s)) text = c;
      Py_DECREF(s);
    }
  }
  std::string name = type != nullptr ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "Error";
  std::fprintf(stderr, "prpc-host: error: %s: %s: %s\n", what, name.c_str(), text.c_str());
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int prpc_host_serve_python(
    const char* app, const char* python_executable, const char* const* keys,
    const char* const* values, size_t count, int check) {
  std::string executable = python_executable != nullptr && *python_executable != '\0'
                               ? python_executable
                               : PRPC_PYTHON_EXECUTABLE;
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  // sys.executable must be a real interpreter: process workers are started with it.
  if (!executable.empty()) {
    PyConfig_SetBytesString(&config, &config.program_name, executable.c_str());
    PyConfig_SetBytesString(&config, &config.executable, executable.c_str());
  }
  PyStatus status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    std::fprintf(stderr, "prpc-host: error: cannot start Python (%s): %s\n", executable.c_str(),
                 status.err_msg != nullptr ? status.err_msg : "unknown error");
    return 1;
  }
  int code = 1;
  PyObject* hosting = PyImport_ImportModule("prpc._hosting");
  if (hosting == nullptr) {
    print_python_error("cannot import the prpc package (pip install it, or set PYTHONPATH)");
    code = 3;
  } else {
    PyObject* cfg = PyDict_New();
    for (size_t i = 0; i < count; ++i) {
      PyObject* v = PyUnicode_FromString(values[i]);
      PyDict_SetItemString(cfg, keys[i], v);
      Py_DECREF(v);
    }
    PyObject* rc = PyObject_CallMethod(hosting, "serve", "sOi", app, cfg, check);
    if (rc == nullptr) {
      print_python_error("the application failed");
    } else {
      code = static_cast<int>(PyLong_AsLong(rc));
      Py_DECREF(rc);
    }
    Py_DECREF(cfg);
    Py_DECREF(hosting);
  }
  if (Py_FinalizeEx() < 0 && code == 0) code = 1;
  return code;
}

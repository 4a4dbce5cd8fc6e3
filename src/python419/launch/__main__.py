"""`PYTHON path/to/launch/__main__.py celery|uvicorn ARGS...`, run by the project's own interpreter.

This folder is taken off sys.path (its module names must not shadow the project's) and the package is loaded
under a private name, so nothing of python419 is imported, whether it is installed there or not.
"""

import importlib
import importlib.util
import os
import sys

PRIVATE_NAME = "_p419_launch"


def load_child() -> object:
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    if PRIVATE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PRIVATE_NAME, os.path.join(here, "__init__.py"), submodule_search_locations=[here]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[PRIVATE_NAME] = package
        spec.loader.exec_module(package)
    return importlib.import_module(PRIVATE_NAME + ".child")


if __name__ == "__main__":
    load_child().main()  # type: ignore[attr-defined]

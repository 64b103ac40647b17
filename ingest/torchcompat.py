"""Import torchvision on machines where its compiled ops cannot load (the one compat step).

The torchvision 0.28.0 wheel's compiled extension is built against CUDA torch. With
the CPU build of torch 2.13.0 it fails to load, and `import torchvision` raises
`RuntimeError: operator torchvision::nms does not exist` while registering fake
kernels for those ops. Declaring the two op schemas first lets the import finish;
models and transforms work, detection ops stay unavailable (we never use them).
Where the extension loads, the first import succeeds and nothing is declared.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import Final

NMS_SCHEMA: Final = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
MISSING_OPS: Final = ("torchvision::nms", "torchvision::qnms")


def needs_op_schemas(error: BaseException) -> bool:
    """Whether an import error is the known missing-compiled-ops failure."""
    return isinstance(error, RuntimeError) and "torchvision::nms does not exist" in str(error)


def import_torchvision() -> ModuleType:
    """Import torchvision, declaring its missing op schemas only when the import needs them;
    one thread at a time (the retry takes torchvision out of sys.modules: a second thread
    importing meanwhile would find it half made)."""
    with _IMPORTING:
        return _import_torchvision()


_IMPORTING = threading.Lock()


def _import_torchvision() -> ModuleType:
    try:
        import torchvision

        module: ModuleType = torchvision
        return module
    except RuntimeError as error:
        if not needs_op_schemas(error):
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    for op in MISSING_OPS:
        namespace, name = op.split("::")
        if not hasattr(getattr(torch.ops, namespace), name):
            torch.library.define(op, NMS_SCHEMA)
    import torchvision as retried

    patched: ModuleType = retried
    return patched

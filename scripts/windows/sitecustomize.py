"""Test-harness only: patches the Windows CPython that scripts/test-windows runs under Wine 8.0.

Installed as `sitecustomize` in that interpreter's site-packages; never part of the python419 package.
Each patch covers a Windows API that Wine 8.0 lacks (measured with Wine 8.0 from Debian bookworm,
CPython 3.12.9), and nothing that real Windows does differently.
"""

import os
import sys

if sys.platform == "win32" and os.environ.get("P419_WINE_HARNESS") != "off":
    import _winapi

    # kernel32!CopyFile2 is missing: 3.12's shutil.copy2 calls it when present and Wine's stub aborts.
    # Without the attribute shutil falls back to its portable copy.
    if hasattr(_winapi, "CopyFile2"):
        del _winapi.CopyFile2

    # 3.12's os.getppid() calls kernel32!PssCaptureSnapshot, missing in Wine (the process aborts). The
    # orphan watchdog calls os.getppid(), so answer it the pre-3.12 way: ntdll's
    # NtQueryInformationProcess(ProcessBasicInformation).InheritedFromUniqueProcessId.
    def _getppid() -> int:
        import ctypes
        from ctypes import wintypes

        class _BasicInformation(ctypes.Structure):
            _fields_ = [
                ("ExitStatus", ctypes.c_void_p),
                ("PebBaseAddress", ctypes.c_void_p),
                ("AffinityMask", ctypes.c_void_p),
                ("BasePriority", ctypes.c_void_p),
                ("UniqueProcessId", ctypes.c_void_p),
                ("InheritedFromUniqueProcessId", ctypes.c_void_p),
            ]

        ntdll = ctypes.WinDLL("ntdll")
        query = ntdll.NtQueryInformationProcess
        query.argtypes = (wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.ULONG, ctypes.c_void_p)
        query.restype = ctypes.c_long
        info = _BasicInformation()
        status = query(wintypes.HANDLE(-1), 0, ctypes.byref(info), ctypes.sizeof(info), None)
        if status != 0:
            raise OSError(f"NtQueryInformationProcess failed (NTSTATUS {status & 0xFFFFFFFF:#x})")
        return int(info.InheritedFromUniqueProcessId or 0)

    os.getppid = _getppid

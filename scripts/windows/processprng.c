/* Test-harness only: Wine 8.0 has no bcryptprimitives.dll!ProcessPrng, which Rust's standard library
 * (pydantic_core) calls for random bytes and aborts without. This stand-in fills the buffer from
 * advapi32!SystemFunction036 (RtlGenRandom), which Wine does have. Built with Debian's
 * gcc-mingw-w64-x86-64-win32 by scripts/test-windows and placed in the private WINEPREFIX's system32. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

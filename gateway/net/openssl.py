"""The three OpenSSL settings a server context needs that Python's ``ssl`` does not expose.

Python 3.11's ``ssl`` has no API for the key-exchange groups, for the list
of client-CA names sent in the CertificateRequest, or for a verify callback.
All three are single calls on the context's ``SSL_CTX``, made here with
``ctypes`` on the very libssl that ``ssl`` is linked to (found through the
``_ssl`` extension module, so the library and its ABI always match):

- ``SSL_CTX_set1_groups_list``: only X25519, P-256 and P-384 are accepted
  for key exchange (docs/operations.md, "TLS, client certificates and
  revocation");
- ``SSL_CTX_set_client_CA_list``: clients and scanners see which CAs the
  listener trusts ("Acceptable client certificate CA names");
- ``SSL_CTX_set_verify`` with a callback: under ``stale_crl_policy =
  "fail_open"``, a "revocation status unknown" error is overruled, so the
  handshake follows the same policy as the signature path
  (``gateway.keys.revocation``).

One mode is only read back: ``releases_buffers`` tells whether OpenSSL frees
a connection's record buffers while they are empty (``SSL_CTX_get_mode``),
which the per-connection memory of idle connections relies on
(``gateway.net.tls_memory``).

The ``SSL_CTX`` pointer is read from the ``SSLContext`` object (CPython lays
it out right after the object header).  Before anything is written through
it, the options OpenSSL reports for that pointer must equal the options
Python reports: a mismatch raises instead of touching memory.  Settings are
applied before the context serves its first handshake.  An OpenSSL
configuration file (``OPENSSL_CONF``) could set the groups too, but it would
have to be in place before ``ssl`` is first imported and would apply to
every context of the process (the clearing link's and PostgreSQL's as well),
and it cannot send CA names or carry the revocation policy.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from gateway.keys.revocation import RevocationPolicy

GROUPS: Final = "X25519:P-256:P-384"
"""Key-exchange groups accepted, in the server's order of preference."""

_SSL_CTRL_SET_GROUPS_LIST: Final = 92  # ssl.h; SSL_CTX_set1_groups_list is a macro over it
_SSL_CTRL_MODE: Final = 33  # ssl.h; SSL_CTX_get_mode is a macro over it
SSL_MODE_RELEASE_BUFFERS: Final = 0x10  # ssl.h

_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _load() -> ctypes.CDLL:
    # dlsym on the _ssl module's handle also searches libssl and libcrypto,
    # the libraries that module was linked against.
    lib = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.OPENSSL_sk_new_null.restype = ctypes.c_void_p
    lib.OPENSSL_sk_new_null.argtypes = []
    lib.OPENSSL_sk_num.restype = ctypes.c_int
    lib.OPENSSL_sk_num.argtypes = [ctypes.c_void_p]
    lib.SSL_add_file_cert_subjects_to_stack.restype = ctypes.c_int
    lib.SSL_add_file_cert_subjects_to_stack.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.SSL_CTX_set_client_CA_list.restype = None
    lib.SSL_CTX_set_client_CA_list.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
    lib.X509_STORE_CTX_get_error.restype = ctypes.c_int
    lib.X509_STORE_CTX_get_error.argtypes = [ctypes.c_void_p]
    lib.X509_STORE_CTX_set_error.restype = None
    lib.X509_STORE_CTX_set_error.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


_LIB: Final = _load()


def _ctx_pointer(ctx: ssl.SSLContext) -> int:
    """The ``SSL_CTX *`` of ``ctx``, checked against what Python knows of it."""
    if sys.implementation.name != "cpython":
        msg = "OpenSSL context settings need CPython's ssl module"
        raise RuntimeError(msg)
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr or _LIB.SSL_CTX_get_options(ptr) != int(ctx.options):
        msg = "cannot locate the OpenSSL context of an ssl.SSLContext"
        raise RuntimeError(msg)
    return ptr


def set_groups(ctx: ssl.SSLContext, groups: str = GROUPS) -> None:
    """Accept only ``groups`` (colon-separated OpenSSL names) for key exchange."""
    ptr = _ctx_pointer(ctx)
    if _LIB.SSL_CTX_ctrl(ptr, _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode()) != 1:
        msg = f"OpenSSL refused the key-exchange groups {groups!r}"
        raise ValueError(msg)


def set_client_ca_names(ctx: ssl.SSLContext, ca_paths: Sequence[Path]) -> int:
    """Send the subjects of the certificates in ``ca_paths`` in the CertificateRequest.

    Returns how many names are sent.  The context takes ownership of the list.
    """
    ptr = _ctx_pointer(ctx)
    names = _LIB.OPENSSL_sk_new_null()
    if not names:
        raise MemoryError
    for path in ca_paths:
        _LIB.SSL_add_file_cert_subjects_to_stack(names, str(path).encode())
    count = int(_LIB.OPENSSL_sk_num(names))
    _LIB.SSL_CTX_set_client_CA_list(ptr, names)
    return count


def releases_buffers(ctx: ssl.SSLContext) -> bool:
    """True when OpenSSL frees a connection's record buffers whenever they are empty.

    CPython turns ``SSL_MODE_RELEASE_BUFFERS`` on for every context; an idle
    connection then holds no record buffers (docs/architecture.md §9).
    """
    return bool(
        _LIB.SSL_CTX_ctrl(_ctx_pointer(ctx), _SSL_CTRL_MODE, 0, None) & SSL_MODE_RELEASE_BUFFERS
    )


def _excuse_unknown_status_py(preverify_ok: int, store_ctx: int) -> int:
    """The fail_open verify callback: overrule "status unknown", never anything else."""
    if preverify_ok:
        return 1
    try:
        error = _LIB.X509_STORE_CTX_get_error(store_ctx)
        if RevocationPolicy("fail_open").excuses_openssl_error(error):
            _LIB.X509_STORE_CTX_set_error(store_ctx, 0)
            return 1
    except Exception:  # noqa: BLE001 - an exception must never pass a certificate
        return 0
    return 0


# Module-level, so the C callback outlives every context that points at it.
_excuse_unknown_status = _VERIFY_CB(_excuse_unknown_status_py)


def apply_revocation_policy(ctx: ssl.SSLContext, policy: RevocationPolicy) -> None:
    """Make the handshake's CRL verdicts follow ``policy`` (see the module docstring).

    Under ``fail_closed`` OpenSSL's own verdict already is the policy; under
    ``fail_open`` a verify callback overrules the "status unknown" errors.
    Call after ``verify_mode`` is set (Python keeps the callback when it is
    set again).
    """
    if not policy.fail_open:
        return
    ptr = _ctx_pointer(ctx)
    _LIB.SSL_CTX_set_verify(ptr, _LIB.SSL_CTX_get_verify_mode(ptr), _excuse_unknown_status)

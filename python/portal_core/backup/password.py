"""The ``PASSWORD`` method: a backup key derived from a password with Argon2id (RFC 9106).

Each backup draws a random 16-byte salt; the salt and the Argon2id parameters travel in the
cipher text's envelope context (in clear, authenticated by the key they derive), so a
recovery needs only the password. Defaults are OWASP's minimum for Argon2id (m = 19 MiB,
t = 2, p = 1), and they are also the floor: a recovery refuses a header naming lower costs
before it derives anything.

A password policy refuses weak passwords before any share work. Short numeric PINs are
refused unless a :class:`GuessLimitedVault` guards them, run by an operator that keeps
neither half of the backup (:class:`~portal_core.backup.api.Keepers`): a cipher text
protected by a 6-digit PIN alone falls to 10^6 offline guesses, and so does one whose vault
is run by the party holding the cipher text. With a vault (a secure-value-recovery design),
Argon2id yields an encryption half and an access half; the vault releases its random secret
only to the slot's owner for the right access half and destroys it after too many wrong
ones, and the key is derived from both the encryption half and that secret. The vault also
records a digest of the salt and costs (:func:`kdf_digest`), which a recovery checks the
cipher text's header against before the access half leaves the device.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import secrets
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from portal_core import kdf
from portal_core.backup.api import Keepers
from portal_core.backup.errors import (
    DecryptFailed,
    KdfParametersRefused,
    PasswordRequired,
    UnsupportedBackupMethod,
    VaultNotIndependent,
    WeakPassword,
)
from portal_core.backup.methods import KeyBinding, MethodKey
from portal_core.enclave.pin import PinParts, derive_key, stretch_pin

__all__ = [
    "OWASP_ARGON2",
    "Argon2Params",
    "GuessLimitedVault",
    "PasswordMethod",
    "PasswordPolicy",
    "VaultSlot",
    "common_passwords",
    "kdf_digest",
]

log = logging.getLogger("portal_core.backup")

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
    """What a new backup password must be, after NIST SP 800-63B rev. 4 (§3.1.1.2): length,
    a blocklist of common passwords, an estimate of how many guesses it takes, and no
    composition rules (no "one digit, one symbol": they make passwords harder to remember,
    not to guess). Messages say which rule failed, never the password.

    ``min_length``: fewest characters, 15 (the guideline's minimum for a password that is
    the only factor, as a backup password is: whoever holds the cipher text guesses it
    offline). ``reject_common``: refuse passwords on the common list (``common`` if given,
    else :func:`common_passwords`), whatever their case. ``min_guesses_log10``: the fewest
    guesses, as a power of ten, that zxcvbn's estimate must reach (12: at 6.4 ms an Argon2id
    guess, 10^12 guesses are 200 core-years); ``context``: words of this service that a
    password must not lean on (zxcvbn's ``user_inputs``). An all-digit secret of at most
    ``max_pin_digits`` digits is a PIN: refused without a guess-limited vault, and with one
    accepted from ``min_pin_digits`` digits.
    """

    min_length: int = 15
    reject_common: bool = True
    min_guesses_log10: float = 12.0
    max_pin_digits: int = 11
    min_pin_digits: int = 4
    common: Collection[str] | None = field(default=None, repr=False)
    context: tuple[str, ...] = ("portal", "portal-core", "wallet", "backup", "custodian")

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
        if self.reject_common:
            common = self.common if self.common is not None else common_passwords()
            if password.lower() in common:
                raise WeakPassword(
                    "the password is on a list of common passwords, which attackers try first"
                )
        if n < self.min_length:
            raise WeakPassword(
                f"the password is shorter than {self.min_length} characters: a backup "
                "password is guessed offline, so it must be long (a few unrelated words "
                "make a good one)"
            )
        guesses = _estimated_guesses_log10(password, self.context)
        if guesses < self.min_guesses_log10:
            raise WeakPassword(
                f"the password is too easy to guess: an estimate puts it at about "
                f"10^{guesses:.0f} guesses, and a backup password needs "
                f"10^{self.min_guesses_log10:g} (repeats, sequences, keyboard patterns and "
                "common words with digits are what attackers try first; a few unrelated "
                "words make a good one)"
            )


# zxcvbn's matching grows quickly with the length; the first characters decide the estimate
# of any password that is weak, and a longer one is only stronger.
_ESTIMATE_CHARS = 100


def _estimated_guesses_log10(password: str, context: tuple[str, ...]) -> float:
    try:
        from zxcvbn import zxcvbn
    except ImportError:  # pragma: no cover - zxcvbn is a declared dependency
        raise RuntimeError(
            "the password policy needs the zxcvbn package: pip install zxcvbn"
        ) from None
    return float(zxcvbn(password[:_ESTIMATE_CHARS], user_inputs=list(context))["guesses_log10"])


class VaultSlot(Protocol):
    """What a vault says of a slot without its access key (read-only: a frozen record
    provides it)."""

    @property
    def tries_left(self) -> int: ...
    @property
    def params(self) -> bytes: ...


@runtime_checkable
class GuessLimitedVault(Protocol):
    """A server-side vault that releases a secret only for the right access key, a limited
    number of times (:class:`portal_core.enclave.PinVault` implements it).

    ``operator``: who runs the vault, as configured; a PIN counts as protected only when
    that operator keeps neither half of the backup (:class:`~portal_core.backup.api.Keepers`).
    ``slot`` names one backup's secret (``<wallet id>.<backup id>``); ``owner`` is the
    client it belongs to (over HTTP, the authenticated caller): a slot answers its owner
    only. ``access_key`` is the Argon2id access half: the vault never sees the password or
    the encryption half. ``params``: public, recorded at enrolment and returned by
    :meth:`status`, so the client can check a cipher text's salt and costs before it
    derives anything from the password.
    """

    operator: str

    def enroll(
        self, slot: str, access_key: bytes, *, owner: str, max_tries: int, params: bytes
    ) -> bytes:
        """Creates the slot's random 32-byte secret, released for ``access_key``; returns it."""
        ...

    def release(self, slot: str, access_key: bytes, *, owner: str) -> bytes:
        """The slot's secret.

        Raises:
            DecryptFailed: wrong access key (one try used; the message says how many remain).
            NoValidBackup: no such slot of this owner, or its tries ran out and the secret
                is destroyed.
        """
        ...

    def status(self, slot: str, *, owner: str) -> VaultSlot:
        """Tries left and the enrolment's ``params`` (no try spent).

        Raises:
            NoValidBackup: no such slot of this owner.
        """
        ...

    def delete(self, slot: str, *, owner: str) -> None:
        """Destroys the slot's secret; no error if it is already gone."""
        ...


def kdf_digest(params: Argon2Params, salt: bytes) -> bytes:
    """SHA-256 of a backup's Argon2id costs and salt, as the vault records them at
    enrolment: the value the client compares a cipher text's clear header with."""
    text = (
        f"portal-core PASSWORD kdf v1|argon2id|t={params.time_cost}|m={params.memory_cost}"
        f"|p={params.parallelism}|salt={_b64(salt)}"
    )
    return hashlib.sha256(text.encode("ascii")).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise DecryptFailed("the cipher text's salt is not valid base64") from None


class PasswordMethod:
    """The ``PASSWORD`` key provider. The password lives only in this object (never in its
    repr) for the duration of one flow.

    ``argon2``: the costs of new backups, and the floor a recovery accepts: a cipher text
    naming lower costs is refused before anything is derived. ``vault``: guards PINs, when
    its operator keeps neither half of the backup.
    """

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
        operator = None if self.vault is None else self.vault.operator
        return f"PasswordMethod(argon2={self.argon2!r}, vault_operator={operator!r})"

    def _checked_password(self) -> str:
        if not self._password:
            raise PasswordRequired("a PASSWORD backup, recovery or eject needs the password")
        if not isinstance(self._password, str):
            raise TypeError("the password must be a str")
        return self._password

    def validate_operations(self, *, new: bool, keepers: Keepers | None = None) -> None:
        self._checked_password()
        if new:
            self._vault_for_new(keepers or Keepers())

    def _vault_for_new(self, keepers: Keepers) -> GuessLimitedVault | None:
        """Checks a new backup's password against the policy; returns the vault to enrol
        with, or None when the password must stand on its own.

        The vault counts only if its operator keeps neither half of the backup: a PIN
        behind a vault its own operator could search offline is refused, and a password
        good enough without a vault is sealed without that vault.

        Raises:
            VaultNotIndependent: the password needs a vault and this one cannot count.
            WeakPassword, PasswordRequired: as :meth:`PasswordPolicy.check`.
        """
        password = self._checked_password()
        vault = self.vault
        if vault is None or keepers.independent_of(vault.operator):
            self.policy.check(password, vault=vault is not None)
            return vault
        try:
            self.policy.check(password, vault=False)
        except WeakPassword:
            self.policy.check(password, vault=True)  # a rule no vault lifts says so itself
            raise VaultNotIndependent(
                _not_independent(vault.operator, keepers, self.policy.min_length)
            ) from None
        log.info(
            "PASSWORD backup sealed without the vault of %r, which is not independent of %s",
            vault.operator,
            keepers,
        )
        return None

    def _stretch(self, salt: bytes, params: Argon2Params) -> bytes:
        password = self._checked_password()
        # NFC, so that the same password typed on two systems that compose accents
        # differently derives the same key.
        secret = unicodedata.normalize("NFC", password).encode("utf-8")
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
        return stretch_pin(
            self._checked_password(),
            salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
        )

    def new_key(self, binding: KeyBinding) -> MethodKey:
        vault = self._vault_for_new(binding.keepers)
        salt = secrets.token_bytes(SALT_LEN)
        params = {**self.argon2.to_context(), "kdf.salt": _b64(salt)}
        if vault is None:
            return MethodKey(bytearray(self._stretch(salt, self.argon2)), params)
        parts = self._stretch_pin(salt, self.argon2)
        secret = vault.enroll(
            binding.slot,
            parts.access_key,
            owner=binding.client_id,
            max_tries=self.vault_max_tries,
            params=kdf_digest(self.argon2, salt),
        )
        params["vault"] = "1"
        params["vault.operator"] = vault.operator
        return MethodKey(bytearray(derive_key(parts.encryption_key, secret, salt=salt)), params)

    def persist_key(self, binding: KeyBinding, key: MethodKey) -> None:
        # Nothing to store: the key is derived again from the password at recovery.
        return None

    def _check_floor(self, costs: Argon2Params) -> None:
        floor = self.argon2
        if costs.time_cost < floor.time_cost or costs.memory_cost < floor.memory_cost:
            raise KdfParametersRefused(
                f"the cipher text names Argon2id costs t={costs.time_cost}, "
                f"m={costs.memory_cost} KiB, below this client's floor (t={floor.time_cost}, "
                f"m={floor.memory_cost} KiB): no backup made here has them, so its header was "
                "altered to make guesses of the password cheap. Nothing was derived from the "
                "password and nothing was sent"
            )

    def recover_key(self, binding: KeyBinding, params: Mapping[str, str]) -> bytearray:
        # Everything here is read from the cipher text's clear header, which whoever keeps
        # the cipher text can rewrite: it is checked before the password is touched.
        argon2 = Argon2Params.from_context(params)
        salt = _unb64(params.get("kdf.salt", ""))
        if not 16 <= len(salt) <= 64:
            raise DecryptFailed("the cipher text's salt has a bad length")
        self._check_floor(argon2)
        if params.get("vault") != "1":
            return bytearray(self._stretch(salt, argon2))
        vault = self.vault
        if vault is None:
            raise UnsupportedBackupMethod(
                "this PASSWORD backup is guarded by a guess-limited PIN vault, which is not "
                "configured on this client"
            )
        named = params.get("vault.operator")
        if named is not None and named != vault.operator:
            raise UnsupportedBackupMethod(
                f"this PASSWORD backup is guarded by the vault of operator {named!r}; this "
                f"client's vault is run by {vault.operator!r}"
            )
        # The vault, not the cipher text's keeper, vouches for the salt and costs: a forged
        # header is caught here, before any value derived from the PIN leaves the device
        # and before a try is spent. (Records enrolled before the vault kept them have no
        # params; for those the floor above is the only check.)
        recorded = vault.status(binding.slot, owner=binding.client_id).params
        if recorded and not hmac.compare_digest(recorded, kdf_digest(argon2, salt)):
            raise KdfParametersRefused(
                f"the cipher text's Argon2id salt and costs are not the ones the vault of "
                f"{vault.operator!r} recorded when this backup was made: its header was "
                "altered. Nothing was derived from the PIN, nothing was sent, no try was spent"
            )
        parts = self._stretch_pin(salt, argon2)
        secret = vault.release(binding.slot, parts.access_key, owner=binding.client_id)
        return bytearray(derive_key(parts.encryption_key, secret, salt=salt))

    def discard_key(self, binding: KeyBinding) -> None:
        if self.vault is not None:
            self.vault.delete(binding.slot, owner=binding.client_id)


def _not_independent(operator: str, keepers: Keepers, min_length: int) -> str:
    """Why a vault cannot count for a backup, and what to configure instead."""
    if operator == keepers.custodian:
        why = f"vault operator {operator!r} also runs the custodian, which keeps its backup shares"
    elif operator == keepers.cipher_text:
        why = f"vault operator {operator!r} also keeps the backup's cipher text"
    else:
        why = (
            "the custodian does not name its operator (or, in self-managed mode, the "
            f"integrator's), so vault operator {operator!r} cannot be shown to be another"
        )
    return (
        "a PIN or short password is only as strong as the guess limit of the vault that "
        f"guards it, and {why}: that operator could test every guess offline. Use a password "
        f"of at least {min_length} characters, or a vault run by another operator, with the "
        "custodian's operators named (LocalCustodian(operator=..., integrator_operator=...))"
    )

"""``Pkcs11Kms.from_env``: a KMS's settings read from environment variables.

What ``portal-core hsm init`` writes to ``.hsm/env`` (and, in the source tree,
``hsm/setup.sh``): ``PKCS11_MODULE``, ``PKCS11_TOKEN_LABEL``, and the PIN in
``PKCS11_USER_PIN`` or in the file named by ``PKCS11_USER_PIN_FILE``; optionally
``PORTAL_KMS_PROFILE`` and ``PORTAL_KMS_POOL_SIZE``. SoftHSM2 reads ``SOFTHSM2_CONF`` from the
process environment itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal_core.kms.errors import HsmConfigError
from portal_core.kms.softhsm import INIT_HINT

__all__ = ["settings_from_env"]


def settings_from_env(
    env: Mapping[str, str], options: Mapping[str, object]
) -> tuple[str, str, str, dict[str, Any]]:
    """``(module, token_label, pin, options)`` for the ``Pkcs11Kms`` constructor; ``options``
    given by the caller win over the environment's.

    Raises:
        HsmConfigError: a variable is missing or malformed, or the PIN file is unreadable.
            The message names variables, never the PIN.
    """
    missing = [v for v in ("PKCS11_MODULE", "PKCS11_TOKEN_LABEL") if not env.get(v)]
    pin = env.get("PKCS11_USER_PIN")
    if not pin and env.get("PKCS11_USER_PIN_FILE"):
        try:
            with open(env["PKCS11_USER_PIN_FILE"], encoding="utf-8") as f:
                pin = f.read().strip()
        except OSError as e:
            raise HsmConfigError(
                f"cannot read PKCS11_USER_PIN_FILE: {e.strerror or type(e).__name__}"
            ) from None
    if not pin:
        missing.append("PKCS11_USER_PIN (or PKCS11_USER_PIN_FILE)")
    if missing or not pin:  # a missing PIN is listed in ``missing``: this only narrows it
        raise HsmConfigError(
            "missing environment: " + ", ".join(missing) + f" (for SoftHSM2: {INIT_HINT})"
        )
    options = dict(options)
    if "profile" not in options and env.get("PORTAL_KMS_PROFILE"):
        options["profile"] = env["PORTAL_KMS_PROFILE"]
    if "pool_size" not in options and env.get("PORTAL_KMS_POOL_SIZE"):
        try:
            options["pool_size"] = int(env["PORTAL_KMS_POOL_SIZE"])
        except ValueError:
            raise HsmConfigError("PORTAL_KMS_POOL_SIZE must be an integer") from None
    return env["PKCS11_MODULE"], env["PKCS11_TOKEN_LABEL"], pin, options

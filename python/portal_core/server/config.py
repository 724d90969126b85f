"""The custodian service's settings (:class:`Settings`) and where they come from
(:func:`load_settings`).

Each setting is taken from the first of these that gives it: the ``portal-core serve``
option (``--port``), the environment (``PORTAL_PORT``), the TOML file named by ``--config``
or ``PORTAL_CONFIG`` (``port = 8400``; the enclave's settings in ``[vault]`` and
``[passkey]`` tables), the default. An empty variable counts as unset. Relative paths in the
file are relative to the file's directory; elsewhere to the working directory.

The HSM is not among them: with any ``PKCS11_*`` variable set, the service uses the token
they name (:func:`~portal_core.kms.environment.settings_from_env`: the PIN comes only from
``PKCS11_USER_PIN`` or ``PKCS11_USER_PIN_FILE``, never from a file of settings); with none,
a SoftHSM2 token of its own under the data directory (:mod:`portal_core.server.runtime`).

The store is SQLite under the data directory unless ``store`` names a PostgreSQL database
(``--store postgresql://...``, ``PORTAL_STORE``, ``store = "..."``): a URL whose password,
if it holds one, no message repeats (libpq also reads ``PGPASSWORD`` and ``~/.pgpass``).

Validation is strict: an unknown key in the file, a value of the wrong type, a number out
of range, a certificate without its key: each is a :class:`ConfigError` naming the setting
and where it came from, before anything starts.
"""

from __future__ import annotations

import logging
import math
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from portal_core.backup.custodian import EJECT_WINDOW_SECONDS
from portal_core.enclave._common import check_user
from portal_core.enclave.vault import DEFAULT_MAX_TRIES, MAX_TRIES_LIMIT
from portal_core.exceptions import PortalError
from portal_core.kms.environment import settings_from_env
from portal_core.kms.errors import HsmConfigError
from portal_core.server.app import DEFAULT_BLOCKING_THREADS, DEFAULT_MAX_BODY_BYTES

__all__ = [
    "CONFIG_VARIABLE",
    "LOG_LEVELS",
    "OPTIONS",
    "PKCS11_VARIABLES",
    "ConfigError",
    "Settings",
    "load_settings",
]

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# Any of these set (not empty): the HSM is the one they name, not the embedded token.
PKCS11_VARIABLES = (
    "PKCS11_MODULE",
    "PKCS11_TOKEN_LABEL",
    "PKCS11_USER_PIN",
    "PKCS11_USER_PIN_FILE",
)
CONFIG_VARIABLE = "PORTAL_CONFIG"


class ConfigError(PortalError):
    """The service cannot start as configured: a setting is missing, of the wrong type or
    out of range; the config file cannot be read, does not parse or names an unknown
    setting; the ``PKCS11_*`` environment is incomplete; or the data directory stays locked
    by another process. The message names the setting and where it came from (an option, a
    variable, the file), never a secret."""


@dataclass(frozen=True)
class Settings:
    """What one custodian service runs with (see the module's docstring for the sources).

    ``data_dir``: the store (and, by default, the HSM token) live there; absolute.
    ``workers``: uvicorn's worker processes. ``tls_cert`` / ``tls_key``: PEM files, both or
    neither. ``operator``: who runs this custodian, reported to clients as the keeper of
    its backups. ``eject_window`` / ``lock_ttl``: seconds, for every tenant's custodian.
    ``vault``: run the PIN vault (off: a vault run by the custodian's own operator is
    refused by clients for PINs; turn it on where this service is another operator's
    vault). ``passkey_rp_id``: run the passkey enclave for this relying party (``None``:
    off); ``passkey_rp_name`` defaults to it, ``passkey_origins`` to ``https://<rp_id>``.
    ``kms``: ``"pkcs11"`` (the ``PKCS11_*`` environment) or ``"embedded"``. ``store``: a
    ``postgresql://`` URL of the database holding the store (``None``: SQLite in the data
    directory); kept out of ``repr``, as it may hold a password. ``sources``: where each
    setting came from, for messages.
    """

    data_dir: str
    host: str = "127.0.0.1"
    port: int = 8400
    workers: int = 1
    tls_cert: str | None = None
    tls_key: str | None = None
    operator: str = "custodian"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    blocking_threads: int = DEFAULT_BLOCKING_THREADS
    log_level: str = "info"
    eject_window: float = EJECT_WINDOW_SECONDS
    lock_ttl: float = 600.0  # LocalCustodian's default
    vault: bool = False
    vault_max_tries: int = DEFAULT_MAX_TRIES
    passkey_rp_id: str | None = None
    passkey_rp_name: str | None = None
    passkey_origins: tuple[str, ...] = ()
    kms: str = "embedded"
    store: str | None = field(default=None, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def source(self, name: str) -> str:
        """``name (where it came from)``, for messages about the setting ``name``."""
        return f"{name} ({self.sources.get(name, 'the default')})"

    def environ(self) -> dict[str, str]:
        """Every setting as its ``PORTAL_*`` variable: what ``portal-core serve`` hands its
        workers, which read it back with :func:`load_settings` (and get these settings)."""
        return {spec.env: _to_text(getattr(self, spec.name)) for spec in _SPECS}


@dataclass(frozen=True)
class _Spec:
    """One setting: its kind (how text and TOML values are read and checked), its place
    in the TOML file, whether ``portal-core serve`` has an option for it, and its range."""

    name: str
    kind: str  # str, int, seconds, bool, path, list, level, operator, store
    toml: tuple[str, ...]
    option: bool = False
    low: int = 0
    high: int | None = None

    @property
    def env(self) -> str:
        return "PORTAL_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_SPECS = (
    _Spec("data_dir", "path", ("data_dir",), option=True),
    _Spec("host", "str", ("host",), option=True),
    _Spec("port", "int", ("port",), option=True, low=1, high=65535),
    _Spec("workers", "int", ("workers",), option=True, low=1),
    _Spec("tls_cert", "path", ("tls_cert",), option=True),
    _Spec("tls_key", "path", ("tls_key",), option=True),
    _Spec("operator", "operator", ("operator",), option=True),
    _Spec("store", "store", ("store",), option=True),
    _Spec("max_body_bytes", "int", ("max_body_bytes",), low=1),
    _Spec("blocking_threads", "int", ("blocking_threads",), low=1),
    _Spec("log_level", "level", ("log_level",)),
    _Spec("eject_window", "seconds", ("eject_window",)),
    _Spec("lock_ttl", "seconds", ("lock_ttl",)),
    _Spec("vault", "bool", ("vault", "enabled")),
    _Spec("vault_max_tries", "int", ("vault", "max_tries"), low=1, high=MAX_TRIES_LIMIT),
    _Spec("passkey_rp_id", "str", ("passkey", "rp_id")),
    _Spec("passkey_rp_name", "str", ("passkey", "rp_name")),
    _Spec("passkey_origins", "list", ("passkey", "origins")),
)
_BY_NAME = {spec.name: spec for spec in _SPECS}
OPTIONS = tuple(spec.name for spec in _SPECS if spec.option)
_DEFAULTS = {
    f.name: None if f.default is MISSING else f.default
    for f in fields(Settings)
    if f.name in _BY_NAME
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_TOML_TYPES = {
    "str": ((str,), "a string"),
    "path": ((str,), "a string"),
    "level": ((str,), "a string"),
    "operator": ((str,), "a string"),
    "store": ((str,), "a string"),
    "int": ((int,), "an integer"),
    "seconds": ((int, float), "a number"),
    "bool": ((bool,), "a boolean"),
    "list": ((list,), "an array of strings"),
}
_TOML_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
    list: "an array",
    dict: "a table",
}


def _to_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _from_text(spec: _Spec, text: str, where: str) -> object:
    """A value given as text (an option or a variable), converted to the spec's kind."""
    if spec.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{spec.name} ({where}) must be an integer, not {text!r}") from None
    if spec.kind == "seconds":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{spec.name} ({where}) must be a number, not {text!r}") from None
    if spec.kind == "bool":
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ConfigError(
            f"{spec.name} ({where}) must be one of {', '.join(_TRUE + _FALSE)}, not {text!r}"
        )
    if spec.kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _checked(spec: _Spec, value: Any, where: str, base: str) -> object:
    """``value`` checked against the spec's range, in its final form (paths made absolute
    against ``base``, lists as tuples)."""
    why: str | None = None
    if spec.kind == "int":
        if value < spec.low or (spec.high is not None and value > spec.high):
            bound = f"{spec.low} to {spec.high}" if spec.high else f"at least {spec.low}"
            why = f"must be {bound}, not {value}"
    elif spec.kind == "seconds":
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            why = f"must be a positive number of seconds, not {value}"
    elif spec.kind == "level":
        value = value.lower()
        if value not in LOG_LEVELS:
            why = f"must be one of {', '.join(LOG_LEVELS)}, not {value!r}"
    elif spec.kind == "operator":
        try:
            check_user(value, what="the operator id")
        except ValueError as e:
            why = str(e)
    elif spec.kind == "store":
        why = store_problem(value)
    elif spec.kind == "list":
        value = tuple(value)
        if not all(isinstance(item, str) and item for item in value):
            why = "must hold non-empty strings only"
    elif spec.kind in ("str", "path") and not value:
        why = "must not be empty"
    elif spec.kind == "path":
        value = os.path.abspath(os.path.join(base, os.path.expanduser(value)))
    if why is not None:
        raise ConfigError(f"{spec.name} ({where}) {why}")
    return value


# The URL schemes libpq reads as PostgreSQL.
_STORE_SCHEMES = ("postgresql", "postgres")


def store_problem(url: str) -> str | None:
    """Why ``url`` is not a PostgreSQL URL the store can use, in words that never quote it
    (it may hold a password); None when it is one."""
    wanted = "must be a postgresql:// or postgres:// URL (postgresql://USER@HOST:PORT/DATABASE)"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return f"{wanted}; the one given does not parse (not shown: it may hold a password)"
    if parts.scheme not in _STORE_SCHEMES or not url.startswith(f"{parts.scheme}://"):
        return f"{wanted}; the one given has another scheme (not shown: it may hold a password)"
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        return f"{wanted}; the one given names no database"
    return None


def _read_toml(path: str, given_by: str) -> tuple[dict[str, tuple[object, str]], str]:
    """The settings in the TOML file ``path`` (``{name: (value, where)}``, types checked),
    and the directory relative paths in it start from."""
    what = f"the config file {path} (from {given_by})"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{what} cannot be read: {e.strerror or type(e).__name__}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} is not valid TOML: {e}") from None
    by_key = {spec.toml: spec for spec in _SPECS}
    tables = {key[0] for key in by_key if len(key) == 2}
    entries: list[tuple[tuple[str, ...], object]] = []
    for key, value in data.items():
        if key not in tables:
            entries.append(((key,), value))
        elif isinstance(value, dict):
            entries += [((key, sub), v) for sub, v in value.items()]
        else:
            raise ConfigError(f"{key} in {path} must be a table ([{key}]), not a value")
    found: dict[str, tuple[object, str]] = {}
    for path_in_file, value in entries:
        dotted = ".".join(path_in_file)
        spec = by_key.get(path_in_file)
        if spec is None:  # named, never quoted: a misplaced secret stays out of the message
            known = ", ".join(".".join(k) for k in by_key)
            raise ConfigError(f"unknown setting {dotted!r} in {path} (known: {known})")
        types, wanted = _TOML_TYPES[spec.kind]
        if not isinstance(value, types) or isinstance(value, bool) != (spec.kind == "bool"):
            got = _TOML_NAMES.get(type(value), type(value).__name__)
            raise ConfigError(f"{spec.name} ({dotted} in {path}) must be {wanted}, not {got}")
        found[spec.name] = (value, f"{dotted} in {path}")
    return found, os.path.dirname(os.path.abspath(path))


def _kms_source(env: Mapping[str, str]) -> str:
    """``"pkcs11"`` when the environment names an HSM (checked as the KMS will read it; the
    PIN is read and dropped), ``"embedded"`` when it names none."""
    if not any(env.get(name) for name in PKCS11_VARIABLES):
        return "embedded"
    try:
        settings_from_env(env, {})
    except HsmConfigError as e:  # names variables, never the PIN
        raise ConfigError(
            f"the HSM (PKCS11_* environment): {e}; or unset every PKCS11_* variable to use "
            "the embedded token under the data directory"
        ) from None
    return "pkcs11"


def load_settings(
    options: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """The settings from ``options`` (``portal-core serve``'s, by setting name, ``None``
    when not given; ``config`` for the file), ``environ`` (default: the process's), the
    config file they name, and the defaults.

    Raises:
        ConfigError: see the module's docstring; the message names the setting and its
            source.
    """
    given = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = set(given) - {*OPTIONS, "config"}
    if unknown:
        raise TypeError(f"no such option: {', '.join(sorted(unknown))}")
    env = os.environ if environ is None else environ
    in_file: dict[str, tuple[object, str]] = {}
    file_base = os.getcwd()
    if "config" in given:
        in_file, file_base = _read_toml(given["config"], "--config")
    elif env.get(CONFIG_VARIABLE):
        in_file, file_base = _read_toml(env[CONFIG_VARIABLE], CONFIG_VARIABLE)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in _SPECS:
        if spec.name in given:
            where, base = spec.flag, os.getcwd()
            value = _from_text(spec, given[spec.name], where)
        elif env.get(spec.env):
            where, base = spec.env, os.getcwd()
            value = _from_text(spec, env[spec.env], where)
        elif spec.name in in_file:
            (value, where), base = in_file[spec.name], file_base
        else:
            values[spec.name] = _DEFAULTS.get(spec.name)
            continue
        values[spec.name] = _checked(spec, value, where, base)
        sources[spec.name] = where
    _check_together(values, sources)
    values["kms"] = _kms_source(env)
    sources["kms"] = "the PKCS11_* environment" if values["kms"] == "pkcs11" else "the default"
    return Settings(**values, sources=sources)


def _check_together(values: dict[str, Any], sources: dict[str, str]) -> None:
    """The checks across settings: a data directory, TLS files in pairs, passkey options
    only with an RP id (whose defaults fill the others)."""
    if values["data_dir"] is None:
        raise ConfigError(
            "data_dir is not set: give --data-dir, PORTAL_DATA_DIR, or data_dir in the config file"
        )
    cert, key = values["tls_cert"], values["tls_key"]
    if (cert is None) != (key is None):
        have, lack = ("tls_cert", "tls_key") if key is None else ("tls_key", "tls_cert")
        raise ConfigError(
            f"{have} ({sources[have]}) is set but {lack} is not: TLS needs the certificate "
            "and its private key (--tls-cert and --tls-key, PORTAL_TLS_CERT and "
            "PORTAL_TLS_KEY, or tls_cert and tls_key in the config file)"
        )
    for name in ("tls_cert", "tls_key"):
        path = values[name]
        if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise ConfigError(f"{name} ({sources[name]}): {path} is not a readable file")
    if values["passkey_rp_id"] is None:
        for name in ("passkey_rp_name", "passkey_origins"):
            if name in sources:
                raise ConfigError(
                    f"{name} ({sources[name]}) is set but passkey_rp_id is not: the passkey "
                    "enclave runs only for a relying party (PORTAL_PASSKEY_RP_ID, or rp_id "
                    "in [passkey])"
                )
        return
    rp_id = values["passkey_rp_id"]
    values["passkey_rp_name"] = values["passkey_rp_name"] or rp_id
    values["passkey_origins"] = values["passkey_origins"] or (f"https://{rp_id}",)

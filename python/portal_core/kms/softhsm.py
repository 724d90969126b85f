"""SoftHSM2 set-up from Python, and what to say when SoftHSM2 does not start.

``portal-core hsm init [DIR]`` uses it, so an installed wheel can create a token without the
source tree; it writes the same files as the source tree's ``hsm/setup.sh`` (which also
installs the packages): ``DIR/softhsm2.conf``, ``DIR/tokens/``, ``DIR/so-pin`` and ``DIR/env``.
Every hint given to a user names ``portal-core hsm init``, which every installation has.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from portal_core.kms.errors import HsmConfigError

__all__ = [
    "INIT_HINT",
    "MODULE_CANDIDATES",
    "TOKEN_LABEL",
    "explain_init_failure",
    "find_module",
    "init_token_dir",
    "read_env_file",
]

TOKEN_LABEL = "portal-core"  # noqa: S105 - a token label, not a secret
MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
# How a user gets a working SoftHSM2 token and its settings, in every hint.
INIT_HINT = "create a token with `portal-core hsm init` and load its settings with `. .hsm/env`"
_INSTALL = "install SoftHSM2 (Debian/Ubuntu: apt-get install softhsm2 opensc)"
_CONF = """\
# SoftHSM2 configuration for portal-core, written by `portal-core hsm init`.
directories.tokendir = {tokendir}
# The database backend is not built into Debian's package; the file backend is.
objectstore.backend = file
# ERROR, WARNING, INFO, DEBUG
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
# portal_core.kms detects a fork itself and re-initialises the module in the child.
library.reset_on_fork = false
"""


def find_module() -> str | None:
    """The path of libsofthsm2.so, if SoftHSM2 is installed in a usual place."""
    return next((p for p in MODULE_CANDIDATES if os.path.isfile(p)), None)


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``export NAME=value`` lines of an env file such as ``.hsm/env``.

    Raises:
        HsmConfigError: the file cannot be read or a line does not parse.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise HsmConfigError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None
    env: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            raise HsmConfigError(f"{path} line {n} does not parse") from None
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if not sep or not name.isidentifier():
                raise HsmConfigError(f"{path} line {n} is not NAME=value")
            env[name] = value
    return env


def explain_init_failure(environ: Mapping[str, str] | None = None) -> str:
    """Why SoftHSM2 may have failed to initialise, as far as its configuration shows, and what
    to do. SoftHSM2 answers a missing configuration file or token directory with a bare
    CKR_GENERAL_ERROR; this reads SOFTHSM2_CONF (from ``environ``, default the process
    environment, where SoftHSM2 reads it) to say which.
    """
    env = os.environ if environ is None else environ
    conf = env.get("SOFTHSM2_CONF")
    if not conf:
        return (
            "SOFTHSM2_CONF is not set, so SoftHSM2 used its default configuration file, which "
            f"is missing or names no usable token directory; {INIT_HINT}"
        )
    path = Path(conf)
    if not path.is_file():
        return f"SOFTHSM2_CONF names {conf}, which is not a file; {INIT_HINT}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or type(e).__name__
        return f"SOFTHSM2_CONF names {conf}, which cannot be read ({why}); {INIT_HINT}"
    tokendir = None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "directories.tokendir":
            tokendir = value.strip()
    if not tokendir:
        return (
            f"{conf} (named by SOFTHSM2_CONF) sets no directories.tokendir; {INIT_HINT}, or "
            "add the line to that file"
        )
    if not Path(tokendir).is_dir():
        return (
            f"the token directory {tokendir} set in {conf} (named by SOFTHSM2_CONF) does not "
            f"exist; {INIT_HINT}, or point SOFTHSM2_CONF at the configuration of an existing "
            "token"
        )
    return (
        f"SoftHSM2 did not start with the configuration {conf} (named by SOFTHSM2_CONF): "
        f"check that file and its token directory {tokendir}, or {INIT_HINT}"
    )


def _softhsm_util(args: list[str], conf: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("softhsm2-util")
    if exe is None:
        raise HsmConfigError(f"softhsm2-util not found: {_INSTALL}, then run this again")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    return subprocess.run(  # noqa: S603 - a fixed executable with arguments we build
        [exe, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _token_exists(conf: Path) -> bool:
    out = _softhsm_util(["--show-slots"], conf).stdout
    return any(
        line.strip().startswith("Label:") and line.split(":", 1)[1].strip() == TOKEN_LABEL
        for line in out.splitlines()
    )


def _write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` (mode 0600) through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def init_token_dir(directory: str | os.PathLike[str]) -> tuple[Path, bool]:
    """Creates (or keeps) a SoftHSM2 token under ``directory``; returns its env file and
    whether a new token was made. Running it again keeps the token and its keys.

    Raises:
        HsmConfigError: SoftHSM2 is not installed, or softhsm2-util failed.
    """
    module = find_module()
    if module is None:
        raise HsmConfigError(f"libsofthsm2.so not found: {_INSTALL}, then run this again")
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    (root / "tokens").mkdir(exist_ok=True)
    conf = root / "softhsm2.conf"
    _write_private(conf, _CONF.format(tokendir=root / "tokens"))
    env_file = root / "env"
    if env_file.exists() and _token_exists(conf):
        return env_file, False
    if _token_exists(conf):
        # Left by an interrupted run without its env file: its PIN is lost, start over.
        _softhsm_util(["--delete-token", "--token", TOKEN_LABEL], conf)
    user_pin, so_pin = secrets.token_hex(16), secrets.token_hex(16)
    done = _softhsm_util(
        ["--init-token", "--free", "--label", TOKEN_LABEL, "--pin", user_pin, "--so-pin", so_pin],
        conf,
    )
    if done.returncode != 0:
        # softhsm2-util's message names the failure; its arguments (the PINs) are not echoed.
        raise HsmConfigError(f"softhsm2-util --init-token failed: {done.stderr.strip()}")
    _write_private(root / "so-pin", so_pin + "\n")
    values: Mapping[str, str] = {
        "SOFTHSM2_CONF": str(conf),
        "PKCS11_MODULE": module,
        "PKCS11_TOKEN_LABEL": TOKEN_LABEL,
        "PKCS11_USER_PIN": user_pin,
    }
    lines = [
        "# Written by `portal-core hsm init`: the SoftHSM2 token portal-core uses. Keep private."
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
    _write_private(env_file, "\n".join(lines) + "\n")
    return env_file, True

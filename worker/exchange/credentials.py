"""API credentials per (account, exchange): from the environment or secret files only.

Environment: ``OW_CRED_<ACCOUNT>_<EXCHANGE>_API_KEY`` / ``_SECRET`` /
``_PASSWORD`` (upper-cased, ``-`` as ``_``). Files (Kubernetes/Docker secret mounts):
``<secrets_dir>/<account>/<exchange>/{api_key,secret,password}``.
Values never appear in repr, str or logs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

_FIELDS = ("api_key", "secret", "password")


class Secret:
    """A string that will not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**redacted**')"

    __str__ = __repr__


class Credentials:
    __slots__ = ("api_key", "password", "secret")

    def __init__(self, api_key: str, secret: str, password: str | None = None) -> None:
        self.api_key = Secret(api_key)
        self.secret = Secret(secret)
        self.password = Secret(password) if password else None

    def __repr__(self) -> str:
        return "Credentials(api_key=**redacted**, secret=**redacted**)"

    def secrets(self) -> list[str]:
        """Raw values, for log redaction filters only."""
        vals = [self.api_key.reveal(), self.secret.reveal()]
        return vals + ([self.password.reveal()] if self.password else [])


def _env_key(account: str, exchange: str, field: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", f"OW_CRED_{account}_{exchange}_{field}".upper())


def load_credentials(account: str, exchange: str, *, secrets_dir: str | None = None,
                     env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for (account, exchange), or None when none are configured."""
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    for field in _FIELDS:
        value = env.get(_env_key(account, exchange, field))
        if value is None and secrets_dir:
            path = Path(secrets_dir) / account / exchange / field
            if path.is_file():
                value = path.read_text().strip()
        if value:
            values[field] = value
    if "api_key" not in values or "secret" not in values:
        return None
    return Credentials(values["api_key"], values["secret"], values.get("password"))

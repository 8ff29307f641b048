"""Every setting in one place, read once from ``CONGVAN_*`` variables; defaults run embedded."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import date, datetime, time, timedelta
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import idna
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from congvan.states.deadlines import PROVINCE_DEFAULTS, RULES, TimeRules, WorkingHours
from congvan.states.networks import Network, parse_networks
from congvan.states.timeliness import FIRST_DAY, LAST_DAY, VIETNAM, reckoned


def _mail_address(text: str) -> bool:
    """Whether ``text`` is one mail address, bare or with a display name."""
    if len(getaddresses([text])) != 1:
        return False
    _name, address = parseaddr(text)
    local, at, host = address.rpartition("@")
    return bool(at and local and host) and not any(ch.isspace() for ch in address)


def _http_url(url: str, setting: str, example: str) -> str:
    """``url`` as it is reached: an http(s) URL with a host and a port that can be, no
    user, fragment, blank or control character, its host in ASCII (a Vietnamese name
    written as its IDNA A-label, as X.509 and DNS ask)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # a bracket left open
        raise ValueError(f"{setting} is not a URL ({exc}), {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{setting} must be an http(s) URL, {example}")
    try:
        port = parts.port  # reading it checks it (0 to 65535)
    except ValueError:
        port = 0
    if port == 0:  # nothing is ever reached at port 0
        raise ValueError(f"{setting} names a port that cannot be, {example}")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValueError(f"{setting} is a plain address, with no user or fragment, {example}")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError(f"{setting} holds a blank or a control character, {example}")
    if parts.netloc.isascii():
        return url
    host = _host_name(parts.hostname, setting)
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


# A label of a host name in ASCII: letters, digits, hyphens (and underscores, which some
# internal names carry), neither starting nor ending with a hyphen.
_ASCII_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def _host_name(host: str, setting: str) -> str:
    """``host`` as DNS is asked for it: an IP address, or a domain name in ASCII."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if host.isascii():
        labels = host.rstrip(".").split(".")
        if len(host) <= 253 and all(_ASCII_LABEL.fullmatch(label) for label in labels):
            return host
        raise ValueError(f"{setting} is not a host name or IP address, e.g. mail.example.vn")
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"{setting}'s host is not a domain name: {exc}") from None


def _public_url(url: str) -> str:
    """``url`` as certificates name it (their CRL is under it)."""
    return _http_url(url, "public_url", "e.g. https://congvan.example.vn")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "congvan"


# The longest a retry may wait, and a deadline or a backoff's cap run: past these a
# setting is a mistake (and a date past year 9999 would stop every job).
_DAY = 24 * 3600
_WEEK = 7 * _DAY


def _on_this_machine(host: str | None) -> bool:
    """A host that is this machine: a loopback address or ``localhost``."""
    if host is None:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _morning_end(hours: WorkingHours) -> time:
    """The send cut-off when none is set: noon, the working morning's end (Decision 28: a
    signed document goes out by the next working morning), or where the morning ends
    before noon (``07:30-11:30,13:30-17:30``: 11:30); with no period before noon, the
    first period's end."""
    noon = time(12, 0)
    if any(begins <= noon <= ends for begins, ends in hours.periods):
        return noon
    before = [ends for _begins, ends in hours.periods if ends <= noon]
    return before[-1] if before else hours.periods[0][1]


def _within_working_day(rules: TimeRules, hours: WorkingHours) -> None:
    """The send cut-off and the registration grace fit the working day: a cut-off before
    the day begins, after it ends or in a break between its periods (lunch) would make
    every normal letter due outside working time, and a grace as long as the day would
    never let one arrive early enough."""
    if not any(begins <= rules.send_cutoff <= ends for begins, ends in hours.periods):
        raise ValueError(
            f"send_cutoff {rules.send_cutoff:%H:%M} falls outside working time "
            f"(working_hours {hours}): it is a moment of a working period, by which a "
            "normal document goes out on the next working day"
        )
    day_minutes = int(hours.per_day.total_seconds() // 60)
    grace = rules.minutes["register_grace"]
    if max(grace) >= day_minutes:
        raise ValueError(
            f"time_rules' register_grace ({', '.join(str(g) for g in grace)} minutes) must "
            f"be shorter than the working day ({day_minutes} minutes of working_hours {hours})"
        )


# Every setting is read from the environment variable of its name with this in front.
ENV_PREFIX = "CONGVAN_"


class Settings(BaseSettings):
    """congvan's configuration. With no variables set: SQLite + in-process workers."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: SecretStr | None = None
    # memory:// runs the broker inside the process; redis://host:port/db uses Redis.
    broker_url: SecretStr = SecretStr("memory://")
    # FULL: a committed transition survives power loss, which a legal record needs.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    db_pool_size: int = Field(default=10, ge=1, le=200)

    worker_threads: int = Field(default=4, ge=1, le=64)
    relay_batch: int = Field(default=200, ge=1, le=10_000)
    relay_poll_seconds: float = Field(default=0.5, gt=0, le=60, allow_inf_nan=False)
    scheduler_poll_seconds: float = Field(default=1.0, gt=0, le=60, allow_inf_nan=False)
    scheduler_batch: int = Field(default=200, ge=1, le=10_000)
    # A timer whose handler fails is taken again after timer_retry_seconds, doubling up to
    # timer_retry_cap_seconds, and parked (kept, listed by `congvan timers parked`) after
    # timer_max_attempts failures.
    timer_max_attempts: int = Field(default=8, ge=1, le=1000)
    timer_retry_seconds: float = Field(default=30.0, gt=0, le=_DAY, allow_inf_nan=False)
    timer_retry_cap_seconds: float = Field(default=3600.0, gt=0, le=_WEEK, allow_inf_nan=False)
    job_deadline_seconds: int = Field(default=300, ge=1, le=_WEEK)
    job_max_attempts: int = Field(default=8, ge=1, le=1000)
    dispatch_max_attempts: int = Field(default=8, ge=1, le=1000)
    # Delivery to peers and status messages back: a failed attempt waits
    # delivery_retry_seconds, doubling up to delivery_retry_cap_seconds, each wait shortened
    # at random by up to delivery_retry_jitter of it (senders do not all come back at once).
    delivery_retry_seconds: float = Field(default=10.0, gt=0, le=_DAY, allow_inf_nan=False)
    delivery_retry_cap_seconds: float = Field(default=1800.0, gt=0, le=_WEEK, allow_inf_nan=False)
    delivery_retry_jitter: float = Field(default=0.2, ge=0, lt=1, allow_inf_nan=False)
    # A delivery attempt not recorded by then (its worker died) is taken again, as an
    # attempt whose outcome is unknown; each wait on a peer is kept within it.
    delivery_lease_seconds: int = Field(default=660, ge=5, le=24 * 3600)

    # The directory of trusted root certificates (PEM files named by their SHA-256), which
    # every verification trusts and nothing else; by default ``trust/`` in data_dir. It
    # lives outside the database so that SQL access cannot add a root.
    trust_dir: Path | None = None
    # Encrypts the private keys congvan keeps (PKCS#8); never stored, never logged.
    key_passphrase: SecretStr | None = None
    # Encrypts our CA's key; unset, key_passphrase does. Set apart, the servers that sign
    # need not hold the passphrase that issues certificates.
    ca_key_passphrase: SecretStr | None = None
    # How often each agency with an organisational key signs its audit chain heads
    # (actions/anchoring.py); 0 turns the timer off (``congvan audit anchor`` still works).
    audit_anchor_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)
    # Our CRL: valid this many days, republished by a database timer when less than
    # crl_refresh_hours are left; any CRL in use with less than crl_warn_hours left is
    # warned of. The timer runs every crl_check_minutes.
    crl_days: int = Field(default=7, ge=1, le=366)
    crl_refresh_hours: int = Field(default=72, ge=1, le=366 * 24)
    crl_warn_hours: int = Field(default=48, ge=1, le=366 * 24)
    crl_check_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # An agency's or signer's certificate with less than this left, and not renewed,
    # opens a certificate_expiring escalation (checked with the CRLs).
    certificate_warn_days: int = Field(default=30, ge=1, le=366)
    # An RFC 3161 timestamp authority (http(s) URL). When set, every signature the server
    # makes and every audit anchor is stamped after commit (actions/timestamping.py); a TSA
    # that does not answer leaves them unstamped, never unsigned.
    tsa_url: str | None = None
    tsa_timeout_seconds: float = Field(default=10.0, gt=0, le=120, allow_inf_nan=False)
    # Where peers reach this instance: certificates name its CRL under it.
    public_url: str = "http://127.0.0.1:8000"

    # Working days (actions/calendar.py): the ``holidays`` package knows the Government's
    # announcements up to its release; days off and make-up working Saturdays announced
    # later are listed here (JSON lists of YYYY-MM-DD dates) and win over the package.
    extra_days_off: list[date] = Field(default_factory=list)
    extra_working_days: list[date] = Field(default_factory=list)
    # "At the latest the morning of the next working day" (Decision 28/2018 Art. 6): the
    # morning ends at this Vietnam time (one written with an offset is read in Vietnam
    # time); it is a moment of a working period (working_hours). Unset: noon, or where the
    # working morning ends before it (_morning_end).
    send_cutoff: time = time(12, 0)
    # A document approved is signed within this many working days, or its signing is
    # flagged (states.timeliness.judge_signing); the law sets no figure.
    sign_within_working_days: int = Field(default=1, ge=0, le=60)
    # Working hours of a working day, Vietnam time: deadlines count only these.
    working_hours: str = "08:00-12:00,13:00-17:00"
    # The province's time rules (states/deadlines.py), rule → minutes for urgency
    # levels 0–4, over the built-in defaults; agencies may only tighten them.
    time_rules: dict[str, list[int]] = Field(default_factory=dict)

    # Notifications (actions/notifications.py): e-mail through this SMTP server (none set:
    # e-mail routes wait and end dead, webhooks still go); STARTTLS upgrades the connection
    # and checks the server's certificate against smtp_ca_file (default: the system's roots).
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="congvan@localhost", max_length=254)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120, allow_inf_nan=False)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120, allow_inf_nan=False)
    # A notification not sent is tried again after notify_retry_seconds, doubling up to
    # notify_retry_cap_seconds, and dead (listed for operators) after notify_max_attempts.
    notify_max_attempts: int = Field(default=8, ge=1, le=100)
    notify_retry_seconds: float = Field(default=30.0, gt=0, le=_DAY, allow_inf_nan=False)
    notify_retry_cap_seconds: float = Field(default=3600.0, gt=0, le=_WEEK, allow_inf_nan=False)
    # Webhooks reach global addresses only, and besides those the private networks listed
    # here, e.g. ["127.0.0.0/8"] for a receiver on this machine (states/networks.py).
    notify_private_networks: list[str] = Field(default_factory=list, max_length=100)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    # Input limits; each has its own error code when passed.
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=1 << 40)
    # A body that stops coming is dropped (408 request_timeout): no byte for this long, or,
    # once it has taken this long, coming slower than ``body_min_bytes_per_second``.
    body_idle_seconds: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    body_min_bytes_per_second: int = Field(default=8 * 1024, ge=0, le=1 << 30)
    # Packages read by the inbox at once, from peers not yet proven (each may spill to a
    # temporary file up to max_request_bytes); more are answered 503 server_busy.
    inbox_concurrency: int = Field(default=16, ge=1, le=1024)
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    max_attachments: int = Field(default=20, ge=1)
    max_recipients: int = Field(default=500, ge=1)
    max_text_length: int = Field(default=500, ge=10)
    max_subject_length: int = Field(default=1000, ge=10)
    max_content_length: int = Field(default=200_000, ge=10)
    max_page_size: int = Field(default=200, ge=1, le=10_000)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            # Path("") is the current folder: a variable set empty would put the database
            # wherever the command happens to run.
            raise ValueError("data_dir is empty: name a folder, or leave it unset")
        return value

    @field_validator("data_dir", "trust_dir", "smtp_ca_file", mode="after")
    @classmethod
    def _home_expanded(cls, value: Path | None) -> Path | None:
        # A shell expands ~ in what it is typed; a unit file, a .env file or a quoted
        # value does not: "~/congvan" is the user's folder, never a folder named "~".
        return None if value is None else value.expanduser()

    @field_validator("send_cutoff", mode="after")
    @classmethod
    def _cutoff_in_vietnam_time(cls, value: time) -> time:
        # A clock time with an offset ("05:00Z") is the Vietnam time it names (12:00):
        # combined with a date in Vietnam time, its offset would otherwise be dropped.
        if value.tzinfo is None:
            return value
        if value.utcoffset() is None:
            raise ValueError("send_cutoff names a time zone without a fixed offset")
        moment = datetime.combine(date(2000, 1, 3), value).astimezone(VIETNAM)
        return moment.time()

    @field_validator("extra_days_off", "extra_working_days", mode="before")
    @classmethod
    def _days_written(cls, value: Any) -> Any:
        """Days as JSON strings, ``"2027-04-30"``: a number is no day (pydantic would read
        0 as 1970-01-01)."""
        if isinstance(value, list) and not all(isinstance(d, str | date) for d in value):
            raise ValueError('each day is written as a string, YYYY-MM-DD: ["2027-04-30"]')
        return value

    @model_validator(mode="after")
    def _days_off_or_working(self) -> Settings:
        listed = {"extra_days_off": self.extra_days_off}
        listed["extra_working_days"] = self.extra_working_days
        for setting, chosen in listed.items():
            if outside := [d for d in chosen if not reckoned(d)]:
                raise ValueError(
                    f"{setting} must fall within {FIRST_DAY.year} to {LAST_DAY.year}: "
                    + ", ".join(d.isoformat() for d in outside[:5])
                )
        self.public_url = _public_url(self.public_url)
        # Set empty, either is unset (no timestamps; e-mail waits), as before it was read.
        tsa_example = "e.g. https://tsa.example.vn/tsr"
        self.tsa_url = _http_url(self.tsa_url, "tsa_url", tsa_example) if self.tsa_url else None
        self.smtp_host = _host_name(self.smtp_host, "smtp_host") if self.smtp_host else None
        if not _mail_address(self.smtp_from):
            raise ValueError(
                f"smtp_from {self.smtp_from!r} is not a mail address (name@host, or "
                "'Name <name@host>')"
            )
        if self.smtp_ca_file is not None and not self.smtp_ca_file.is_file():
            raise ValueError(f"smtp_ca_file {self.smtp_ca_file} is not a file")
        if self.smtp_username and not self.smtp_starttls and not _on_this_machine(self.smtp_host):
            raise ValueError(
                "smtp_username needs smtp_starttls: the password would cross the network in "
                "clear (CONGVAN_SMTP_STARTTLS=true; a server on this machine is excepted)"
            )
        both = set(self.extra_days_off) & set(self.extra_working_days)
        if both:
            days = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"days both in extra_days_off and extra_working_days: {days}")
        # Refuse rules and hours that cannot be, at startup, naming the setting.
        try:
            hours = self.hours()
        except ValueError as exc:
            raise ValueError(f"working_hours: {exc}") from None
        if "send_cutoff" not in self.model_fields_set:
            self.send_cutoff = _morning_end(hours)
        rules = self.province_rules()
        _within_working_day(rules, hours)  # its message names the settings at odds
        self.private_networks()
        return self

    def private_networks(self) -> tuple[Network, ...]:
        """The private networks a webhook may reach (``notify_private_networks``)."""
        try:
            return parse_networks(self.notify_private_networks)
        except ValueError as exc:
            raise ValueError(f"notify_private_networks: {exc}") from None

    def province_rules(self) -> TimeRules:
        """The province's time rules: the defaults with ``time_rules`` over them."""
        minutes = {**PROVINCE_DEFAULTS.minutes, **{k: tuple(v) for k, v in self.time_rules.items()}}
        unknown = sorted(set(self.time_rules) - set(RULES))
        if unknown:
            raise ValueError(
                f"time_rules: unknown rules {', '.join(unknown)}; known: {', '.join(RULES)}"
            )
        try:
            return TimeRules(minutes=minutes, send_cutoff=self.send_cutoff)
        except ValueError as exc:
            raise ValueError(f"time_rules: {exc}") from None

    def hours(self) -> WorkingHours:
        return WorkingHours.parse(self.working_hours)

    @property
    def trust_path(self) -> Path:
        return self.trust_dir or self.data_dir / "trust"

    @property
    def crl_url(self) -> str:
        return f"{self.public_url.rstrip('/')}/v1/pki/crl"

    def passphrase(self) -> str:
        """The key passphrase, or a clear error naming the variable to set."""
        if self.key_passphrase is None or not self.key_passphrase.get_secret_value():
            from congvan.states.errors import InvalidInput

            raise InvalidInput(
                "Set CONGVAN_KEY_PASSPHRASE: it encrypts the stored keys.",
                field="CONGVAN_KEY_PASSPHRASE",
            )
        return self.key_passphrase.get_secret_value()

    def clock_allowance(self) -> timedelta:
        """The most a process's clock may differ from the database server's: a quarter of
        the shortest lease, and never more than 30 s. Leases are set by a worker's clock
        and judged by the scheduler's: a worker behind by more than its lease finds every
        attempt re-driven as interrupted, its receipts thrown away."""
        shortest = min(self.job_deadline_seconds, self.delivery_lease_seconds)
        return min(timedelta(seconds=30), timedelta(seconds=shortest / 4))

    def ca_passphrase(self) -> str:
        """The CA key's passphrase (else the key passphrase), or a clear error."""
        if self.ca_key_passphrase is not None and self.ca_key_passphrase.get_secret_value():
            return self.ca_key_passphrase.get_secret_value()
        if self.key_passphrase is None or not self.key_passphrase.get_secret_value():
            from congvan.states.errors import InvalidInput

            raise InvalidInput(
                "Set CONGVAN_CA_KEY_PASSPHRASE (or CONGVAN_KEY_PASSPHRASE): it encrypts the "
                "CA key.",
                field="CONGVAN_CA_KEY_PASSPHRASE",
            )
        return self.passphrase()

    @property
    def db_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'congvan.db'}"


def variable(field: str) -> str:
    """The environment variable a setting is read from: ``CONGVAN_SMTP_HOST``."""
    return f"{ENV_PREFIX}{field.upper()}"


# A setting's name in a message: lower case with an underscore (``smtp_host``; not ``host``
# or ``port``, which are words too).
_NAMED = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def variables_named(text: str) -> str:
    """``text`` with each setting it names written as its environment variable."""
    return _NAMED.sub(lambda m: variable(m[0]) if m[0] in Settings.model_fields else m[0], text)

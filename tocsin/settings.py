"""Process settings from the environment (prefix `TOCSIN_`), read once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CONFIG = Path(__file__).with_name("default_config.yaml")


class Settings(BaseSettings):
    """Everything a worker needs that is not in the configuration file.

    Secrets live here, never in the YAML file.
    """

    model_config = SettingsConfigDict(
        env_prefix="TOCSIN_", frozen=True, env_ignore_empty=True
    )

    # TODO: SASL and TLS settings for the broker connection; until then every
    # connection (workers, replay, admin) is plaintext.
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "TOCSIN_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Kafka bootstrap servers, comma separated host:port.",
    )
    config: Path = Field(default=DEFAULT_CONFIG, description="The YAML file.")
    app_id: str = Field(default="tocsin", description="Consumer group and prefix.")
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name, to share a cluster."
    )
    topic_partitions: int = Field(default=4, ge=1, le=256)
    clock: Literal["live", "replay"] = Field(
        default="live",
        description="live: wall time. replay: the newest event time seen.",
    )
    store: str = Field(
        default="rocksdb://", description="faust table store: rocksdb:// or memory://"
    )
    data_dir: Path = Field(default=Path("var/worker"), description="Table files.")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    # A 2 s session lets a worker join Tansu in about 2.5 s; Apache Kafka
    # accepts it only if group.min.session.timeout.ms allows it (the broker
    # started by `tocsin broker` sets 500 ms). Kafka's own minimum is 6 s.
    broker_session_timeout_s: float = Field(default=6.0, gt=0)
    broker_heartbeat_interval_s: float = Field(default=1.0, gt=0)
    producer_max_batch_size: int = Field(
        default=16384,
        ge=1,
        description="Bytes; set 1 on Tansu, whose latest-offset response is wrong "
        "for multi-record batches and loses table updates on recovery.",
    )
    tick_interval_s: float = Field(default=1.0, gt=0, description="Timer period.")
    runbook_run_retention_s: float = Field(
        default=30 * 86400.0,
        gt=0,
        description="Seconds a finished runbook run stays in the run table. A run "
        "also stays as long as a runbook's rate limit or circuit breaker reads it. "
        "A trigger redelivered after its run is removed starts the run again.",
    )
    analytics_retention_days: float = Field(
        default=30.0,
        ge=1,
        le=3650,
        description="Days a response-metric window is kept after it ends, by the "
        "pipeline clock. Raise it to keep a longer history or to replay one.",
    )
    table_cleanup_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between faust's sweeps that drop expired windows.",
    )
    prune_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between prune ticks, which remove expired table keys.",
    )
    prune_max_keys: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Maximum keys one prune tick removes per table and partition.",
    )
    slack_base_url: str = "https://slack.com/api/"
    slack_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Verifies Slack interactivity requests."
    )
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com",
        pattern=r"^https://",
        description="Events API v2 base URL; the pagerduty client requires https.",
    )
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_webhook_secrets: SecretStr | None = Field(
        default=None,
        description="Comma-separated secrets of PagerDuty webhook subscriptions; "
        "several are accepted at once so a secret can be rotated.",
    )
    http_timeout_s: float = Field(default=10.0, gt=0)
    delivery_attempts: int = Field(default=4, ge=1, le=20)
    delivery_deadline_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds from a delivery's first attempt "
        "after which no retry starts.",
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Consecutive failed attempts that open a "
        "receiver's circuit breaker.",
    )
    breaker_cooldown_s: float = Field(
        default=30.0,
        ge=0,
        description="Seconds an open circuit breaker waits "
        "before it lets a trial attempt through.",
    )
    log_level: str = "INFO"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

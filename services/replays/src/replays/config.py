"""Settings of the replays service (env prefix ``REPLAYS_``)."""

from __future__ import annotations

from pydantic import Field

from shared.config import BaseServiceSettings, service_settings


class Settings(BaseServiceSettings):
    model_config = service_settings("REPLAYS_")

    service_name: str = "replays"
    http_port: int = 8003
    public_base_url: str = "http://127.0.0.1:8003"
    # Replays of one stop first published within this many seconds of the batch's opening share a batch_id.
    batch_window_seconds: int = Field(default=600, ge=0)

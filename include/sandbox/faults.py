"""Injected failures for the sandbox HTTP server, so extraction code meets what real APIs do.

A fault is decided once per GET list request (never for ``/health``, ``/_admin/*``, single-record
lookups or writes), from one uniform draw of a seeded generator: the n-th list request after a
(re)configuration always gets the same outcome, whatever it asks for.

- ``500``: a JSON 500 instead of the page.
- ``429``: a JSON 429 with ``Retry-After: <retry_after>`` (default ``1``; fractions such as
  ``0.2`` are allowed, because the extraction client honours any numeric seconds value, and keep
  tests fast).
- ``timeout``: the server sleeps ``sleep`` seconds (default ``C360_SANDBOX_FAULT_SLEEP`` or 5),
  then answers correctly, so a client with a shorter timeout gives up first.

Faults never touch data: a failed request changes nothing, and the same request retried gets the
correct page. Configure with ``create_app(faults=FaultConfig(...))``, the environment variable
``C360_SANDBOX_FAULTS="500:0.1,429:0.05,timeout:0.02,seed:7"`` (optional ``retry_after:0.2`` and
``sleep:1`` too) or at run time with ``PUT /_admin/faults``.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter

from pydantic import BaseModel, Field, model_validator

FAULTS_ENV = "C360_SANDBOX_FAULTS"
FAULT_SLEEP_ENV = "C360_SANDBOX_FAULT_SLEEP"
OUTCOMES = ("500", "429", "timeout")
_KEYS = {
    "500": "p500",
    "429": "p429",
    "timeout": "timeout",
    "seed": "seed",
    "retry_after": "retry_after",
    "sleep": "sleep",
}


def _default_sleep() -> float:
    return float(os.environ.get(FAULT_SLEEP_ENV) or 5)


class FaultConfig(BaseModel):
    """Probabilities per GET list request (each 0..1, together at most 1) and how faults behave."""

    p500: float = Field(0.0, ge=0, le=1, description="share of list requests answered with a JSON 500")
    p429: float = Field(0.0, ge=0, le=1, description="share answered with 429 and Retry-After")
    timeout: float = Field(0.0, ge=0, le=1, description="share answered only after `sleep` seconds")
    seed: int = Field(0, description="seed of the outcome sequence")
    retry_after: float = Field(1.0, gt=0, le=60, description="Retry-After seconds on injected 429s")
    sleep: float = Field(default_factory=_default_sleep, ge=0, le=300, description="seconds a timeout sleeps")

    @model_validator(mode="after")
    def _at_most_one(self) -> FaultConfig:
        if self.p500 + self.p429 + self.timeout > 1 + 1e-9:
            raise ValueError(
                f"fault probabilities add up to {self.p500 + self.p429 + self.timeout:g}; they must be <= 1"
            )
        return self

    @property
    def active(self) -> bool:
        return self.p500 + self.p429 + self.timeout > 0

    @classmethod
    def parse(cls, text: str) -> FaultConfig:
        """``"500:0.1,429:0.05,timeout:0.02,seed:7"`` (keys also ``retry_after``, ``sleep``)."""
        values: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition(":")
            if not sep or key.strip() not in _KEYS:
                raise ValueError(
                    f"{FAULTS_ENV} part {part!r} is not <kind>:<value> with kind one of "
                    f"{', '.join(_KEYS)}; e.g. 500:0.1,429:0.05,timeout:0.02,seed:7"
                )
            values[_KEYS[key.strip()]] = value.strip()
        return cls.model_validate(values)

    @classmethod
    def from_env(cls) -> FaultConfig | None:
        text = os.environ.get(FAULTS_ENV, "").strip()
        return cls.parse(text) if text else None

    def sequence(self, n: int) -> list[str | None]:
        """The outcomes of the first ``n`` list requests (None = served normally)."""
        injector = FaultInjector(self)
        return [injector.draw() for _ in range(n)]


class FaultInjector:
    """The running fault state of one app: thread-safe, resettable, counting what it injected."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.lock = threading.Lock()
        self.configure(config)

    def configure(self, config: FaultConfig | None) -> None:
        with self.lock:
            self.config = config or FaultConfig()
            self.rng = random.Random(self.config.seed)
            self.requests = 0
            self.injected: Counter[str] = Counter()

    def draw(self) -> str | None:
        """The outcome for the next list request; one draw per request, active or not."""
        with self.lock:
            config = self.config
            if not config.active:
                return None
            self.requests += 1
            u = self.rng.random()
            outcome = None
            for name, p in zip(OUTCOMES, (config.p500, config.p429, config.timeout), strict=True):
                if u < p:
                    outcome = name
                    break
                u -= p
            if outcome:
                self.injected[outcome] += 1
            return outcome

    def status(self) -> dict:
        with self.lock:
            return {
                "config": self.config.model_dump(),
                "active": self.config.active,
                "requests": self.requests,
                "injected": {name: self.injected[name] for name in OUTCOMES},
            }

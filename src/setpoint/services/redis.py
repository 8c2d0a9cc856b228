"""A managed Redis: know it is ready."""

from __future__ import annotations

from dataclasses import dataclass

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.readiness import wait_until


# Deletes the keys matching a pattern without blocking Redis on a large database (SCAN, not KEYS).
_DELETE_MATCHING = """
local cursor, deleted = "0", 0
repeat
  local page = redis.call("SCAN", cursor, "MATCH", ARGV[1], "COUNT", 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do redis.call("UNLINK", key); deleted = deleted + 1 end
until cursor == "0"
return deleted
"""


@dataclass(frozen=True)
class RedisServer:
    """One instance's Redis on loopback, with a password."""

    port: int
    password: str
    host: str = "127.0.0.1"

    def command(self, *args: str) -> str:
        """Run one redis-cli command (the password travels in the environment, not argv)."""
        result = proc.run(
            ["redis-cli", "-h", self.host, "-p", str(self.port), *args],
            env={"REDISCLI_AUTH": self.password},
            check=False,
            timeout=10,
        )
        return result.stdout.strip() if result.ok else ""

    def is_ready(self) -> bool:
        return self.command("PING") == "PONG"

    def delete(self, db: int, pattern: str) -> int:
        """Delete the keys of database `db` matching `pattern`; how many there were."""
        answer = self.command("-n", str(db), "EVAL", _DELETE_MATCHING, "0", pattern)
        if not answer.isdigit():
            raise SetpointError(f"Redis on port {self.port} refused to delete {pattern} ({answer or 'no answer'})",
                                "see: setpoint logs NAME redis")
        return int(answer)

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(self.is_ready, timeout, SetpointError(
            f"Redis on port {self.port} did not answer within {timeout:.0f} s", "see: setpoint logs NAME redis"))

"""Time-ordered UUIDs (version 7, RFC 9562) for rows written at a high rate.

Random (v4) keys scatter inserts over the whole primary-key index; v7 keys grow with time, so
new rows land on the index's right edge and its hot pages stay in memory.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)

"""Step 4: hardware profiles, roofline prediction and peak memory."""

from __future__ import annotations

from explorer.hardware.memory import MemoryProfile, memory_profile
from explorer.hardware.profile import Device, bundled, load_device
from explorer.hardware.roofline import TOTAL_KEYS, LayerTime, Roofline, bound

__all__ = ["TOTAL_KEYS", "Device", "LayerTime", "MemoryProfile", "Roofline", "bound", "bundled", "load_device",
           "memory_profile"]

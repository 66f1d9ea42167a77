"""The app's settings, declared as data and stored with QSettings in clapdesk's config folder.

The library folders themselves live in the catalog (the library's source of truth); settings
hold what belongs to this computer and this user: model, device, audio output, audition
behaviour, window layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from clapdesk.core.store.paths import config_dir

SETTINGS_FILE = "clapdesk.ini"


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    label: str
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: float = 0
    maximum: float = 0


SETTINGS: tuple[Setting, ...] = (
    Setting("model", "", "Model",
            "A Hugging Face model id or a folder holding a CLAP model; empty keeps the "
            "library's model (laion/larger_clap_general by default)."),
    Setting("device", "auto", "Device", "Where the model runs.", ("auto", "cpu", "cuda", "mps")),
    Setting("precision", "auto", "Model precision",
            "auto: the first indexing compares bfloat16 and int8 with float32 on your own files "
            "and uses the fastest that this CPU runs natively and that keeps search results "
            "(the status bar says which, and why). float32: exact. int8 and bfloat16: faster, "
            "slightly less exact sound vectors. float16: for a GPU. Used from the next start; "
            "vectors already indexed are kept.",
            ("auto", "float32", "int8", "bfloat16", "float16")),
    Setting("audio_output", "", "Audio output", "The output device for audition; empty is the "
            "system default."),
    Setting("audio_input", "", "Audio input (Record)", "The input device Record captures from "
            "(a microphone, a line-in, an audio interface); empty is the system default."),
    Setting("record_threshold_db", -45, "Recording silence threshold (dBFS)",
            "What is quieter than this at the start and end of a recording is trimmed; the "
            "level meter shows it as a line.", (), -90, -6),
    Setting("auto_play", True, "Auto-play while browsing with the arrow keys"),
    Setting("auto_play_delay_ms", 120, "Auto-play delay (ms)",
            "Wait this long after the selection moves, so fast scrolling stays quiet.", (), 0, 1000),
    Setting("loop", False, "Loop audition"),
    Setting("volume", 80, "Volume (%)", "", (), 0, 100),
    Setting("results", 100, "Results per search", "", (), 10, 1000),
    Setting("export_folder", "", "Region exports",
            "Where regions dragged out of the waveform are written; they stay there, since a "
            "DAW project links to them. Empty: the clapdesk folder in your Music folder."),
    Setting("link_start", "bar", "With Link on, previews start on the next",
            "A bar (four beats) or a beat of the Link session, so they land in time with the "
            "DAW.", ("bar", "beat")),
    Setting("watch_folders", True, "Pick up new and changed files while clapdesk is open"),
)
BY_KEY = {s.key: s for s in SETTINGS}


def _coerce(value: Any, default: Any) -> Any:
    """QSettings' INI backend gives strings back; turn them into the declared type."""
    if value is None:
        return default
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default
    if isinstance(default, list):
        if isinstance(value, str):
            return [value] if value else []
        return list(value)
    return str(value)


class Settings:
    """Typed access to the declared settings; unknown keys are refused to catch typos."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or str(config_dir() / SETTINGS_FILE)
        self.store = QSettings(self.path, QSettings.Format.IniFormat)

    def get(self, key: str) -> Any:
        setting = BY_KEY[key]
        return _coerce(self.store.value(key), setting.default)

    def set(self, key: str, value: Any) -> None:
        if key not in BY_KEY:
            raise KeyError(key)
        self.store.setValue(key, value)

    def values(self) -> dict[str, Any]:
        return {s.key: self.get(s.key) for s in SETTINGS}

    # -- window layout and lists that are not user-facing settings ----------------------------
    def layout(self, name: str) -> QByteArray | None:
        value = self.store.value(f"layout/{name}")
        return value if isinstance(value, QByteArray) else None

    def set_layout(self, name: str, value: QByteArray) -> None:
        self.store.setValue(f"layout/{name}", value)

    def sync(self) -> None:
        self.store.sync()

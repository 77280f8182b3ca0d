"""The local server's voice catalog: a few voices shaped like the real ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Voice:
    voice_id: str
    display_name: str
    languages: tuple[str, ...]
    gender: str
    #: Base pitch in Hz; engines derive their timbre from it.
    pitch_hz: float

    def to_json(self) -> dict[str, object]:
        return {
            "voiceId": self.voice_id,
            "displayName": self.display_name,
            "tags": {"language": list(self.languages), "gender": self.gender},
        }


CATALOG: dict[str, Voice] = {
    v.voice_id: v
    for v in (
        Voice("magnus", "Magnus", ("english",), "male", 110.0),
        Voice("emily", "Emily", ("english",), "female", 210.0),
        Voice("arjun", "Arjun", ("english", "hindi"), "male", 125.0),
        Voice("priya", "Priya", ("hindi",), "female", 225.0),
        Voice("lucia", "Lucia", ("spanish",), "female", 195.0),
    )
}

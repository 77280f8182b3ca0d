"""The espeak-ng engine: real speech in every API language, deterministic, resampled."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

espeakng_loader = pytest.importorskip("espeakng_loader")

from batchtts.api.request import LANGUAGE_CODES, TtsRequest  # noqa: E402
from batchtts.server import espeak  # noqa: E402
from batchtts.server.engines import get_engine  # noqa: E402
from batchtts.server.voices import CATALOG  # noqa: E402

#: A sentence per API language, in its own script, with clause pauses.
TEXTS: dict[str, str] = {
    "en": "The quick brown fox jumps over the lazy dog. Then it rests in the sun.",
    "hi": "नमस्ते, आप कैसे हैं? मैं आज बहुत खुश हूँ।",
    "mr": "नमस्कार, तुम्ही कसे आहात? मी आज खूप आनंदी आहे.",
    "kn": "ನಮಸ್ಕಾರ, ನೀವು ಹೇಗಿದ್ದೀರಿ? ನಾನು ಇಂದು ತುಂಬಾ ಸಂತೋಷವಾಗಿದ್ದೇನೆ.",
    "ta": "வணக்கம், நீங்கள் எப்படி இருக்கிறீர்கள்? நான் இன்று மகிழ்ச்சியாக இருக்கிறேன்.",
    "bn": "নমস্কার, আপনি কেমন আছেন? আমি আজ খুব খুশি।",
    "gu": "નમસ્તે, તમે કેમ છો? હું આજે ખૂબ ખુશ છું.",
    "te": "నమస్కారం, మీరు ఎలా ఉన్నారు? నేను ఈ రోజు చాలా సంతోషంగా ఉన్నాను.",
    "ml": "നമസ്കാരം, സുഖമാണോ? ഞാൻ ഇന്ന് വളരെ സന്തോഷത്തിലാണ്.",
    "pa": "ਸਤ ਸ੍ਰੀ ਅਕਾਲ, ਤੁਸੀਂ ਕਿਵੇਂ ਹੋ? ਮੈਂ ਅੱਜ ਬਹੁਤ ਖੁਸ਼ ਹਾਂ।",
    "or": "ନମସ୍କାର, ଆପଣ କେମିତି ଅଛନ୍ତି? ମୁଁ ଆଜି ବହୁତ ଖୁସି।",
    "es": "Hola, ¿cómo estás? Hoy estoy muy contento de verte.",
    "de": "Guten Tag, wie geht es Ihnen? Ich freue mich sehr, Sie heute zu sehen.",
    "fr": "Bonjour, comment allez-vous ? Je suis très content de vous voir aujourd'hui.",
    "it": "Buongiorno, come sta? Sono molto contento di vederla oggi.",
    "nl": "Goedendag, hoe gaat het met u? Ik ben erg blij u vandaag te zien.",
    "sv": "God dag, hur mår du? Jag är mycket glad att se dig i dag.",
    "pt": "Bom dia, como está? Estou muito contente por vê-lo hoje.",
    "ru": "Здравствуйте, как у вас дела? Я очень рад видеть вас сегодня.",  # noqa: RUF001 (Cyrillic on purpose)
    "el": "Καλημέρα, τι κάνετε; Χαίρομαι πολύ που σας βλέπω σήμερα.",
    "fi": "Hyvää päivää, mitä kuuluu? Olen hyvin iloinen nähdessäni sinut tänään.",
    "no": "God dag, hvordan har du det? Jeg er veldig glad for å se deg i dag.",
    "pl": "Dzień dobry, jak się pan miewa? Bardzo się cieszę, że pana dziś widzę.",
    "ar": "مرحبا، كيف حالك؟ أنا سعيد جدا برؤيتك اليوم.",
    "zh": "你好，你今天好吗？我今天非常高兴见到你。",
    "id": "Selamat siang, apa kabar? Saya sangat senang bertemu Anda hari ini.",
    "ja": "こんにちは、おげんきですか？きょうは あえて とても うれしいです。",
    "ko": "안녕하세요, 어떻게 지내세요? 오늘 만나서 정말 반갑습니다.",
    "ms": "Selamat tengah hari, apa khabar? Saya sangat gembira berjumpa anda hari ini.",
    "tr": "İyi günler, nasılsınız? Bugün sizi gördüğüme çok sevindim.",  # noqa: RUF001 (Turkish dotless i)
    "vi": "Xin chào, bạn có khỏe không? Hôm nay tôi rất vui được gặp bạn.",
}
ENGLISH = TEXTS["en"]
#: Most seconds of speech per character: a Chinese character or a Korean block is a whole syllable.
SYLLABIC_SECONDS = {"zh": 0.35, "ko": 0.35}
RATE = 16000


@pytest.fixture(scope="module")
def engine() -> espeak.EspeakEngine:
    if not espeak.espeak_available():
        pytest.fail("espeakng_loader is installed but espeak_available() is False")
    return espeak.EspeakEngine()


def _frames(samples: np.ndarray, rate: int, ms: int = 25) -> np.ndarray:
    size = rate * ms // 1000
    count = samples.size // size
    return samples[: count * size].astype(np.float64).reshape(count, size) / 32768


def _speech_features(samples: np.ndarray, rate: int) -> dict[str, float]:
    """Frame statistics that separate speech from silence, noise and a steady tone."""
    frames = _frames(samples, rate)
    frame_rms = np.sqrt((frames**2).mean(axis=1))
    loud = frame_rms > 0.1 * frame_rms.max()
    power = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(frames.shape[1], 1 / rate)
    centroid = (power * freqs).sum(axis=1) / power.sum(axis=1)
    flatness = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    return {
        "rms": float(np.sqrt((samples.astype(np.float64) / 32768) ** 2).mean()),
        "pause_fraction": float((frame_rms < 0.05 * frame_rms.max()).mean()),
        "loud_fraction": float(loud.mean()),
        "centroid_spread_hz": float(centroid[loud].std()),
        "flatness": float(np.median(flatness[loud])),
    }


def _median_pitch_hz(samples: np.ndarray, rate: int) -> float:
    """Median autocorrelation pitch over loud frames (60-400 Hz)."""
    frames = _frames(samples, rate, ms=40)
    frame_rms = np.sqrt((frames**2).mean(axis=1))
    lo, hi = rate // 400, rate // 60
    pitches = []
    for frame in frames[frame_rms > 0.3 * frame_rms.max()]:
        frame = frame - frame.mean()
        corr = np.correlate(frame, frame, mode="full")[frame.size - 1 :]
        pitches.append(rate / (lo + int(np.argmax(corr[lo:hi]))))
    return float(np.median(pitches))


def _request(text: str = ENGLISH, **fields: object) -> TtsRequest:
    return TtsRequest(text=text, **{"sample_rate": RATE, **fields})  # type: ignore[arg-type]


def test_feature_check_rejects_silence_noise_and_tone() -> None:
    """The speech checks below would fail for audio that is not speech."""
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(2 * RATE) * 3000).astype(np.int16)
    tone = (np.sin(2 * np.pi * 200 * np.arange(2 * RATE) / RATE) * 3000).astype(np.int16)
    assert _speech_features(noise, RATE)["flatness"] > 0.3
    assert _speech_features(noise, RATE)["pause_fraction"] == 0
    assert _speech_features(tone, RATE)["centroid_spread_hz"] < 50
    assert _speech_features(np.zeros(RATE, np.int16) + 1, RATE)["rms"] < 1e-3


def test_every_api_language_has_a_text_and_an_espeak_voice() -> None:
    assert set(TEXTS) == set(LANGUAGE_CODES) == set(espeak.ESPEAK_LANGUAGES)


def test_mapped_voices_exist_in_the_shipped_data() -> None:
    """Each mapped espeak voice is a language file in espeakng-loader's data (no silent fallback)."""
    shipped: set[str] = set()
    for path in (Path(espeakng_loader.get_data_path()) / "lang").rglob("*"):
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("language "):
                    shipped.add(line.split()[1].lower())
    missing = {code: name for code, name in espeak.ESPEAK_LANGUAGES.items() if name not in shipped}
    assert not missing


@pytest.mark.parametrize("language", LANGUAGE_CODES)
def test_each_language_sounds_like_speech(engine: espeak.EspeakEngine, language: str) -> None:
    text = TEXTS[language]
    samples = engine.synthesize(_request(text, language=language))
    assert samples.dtype == np.int16 and samples.ndim == 1
    features = _speech_features(samples, RATE)
    assert features["rms"] > 0.01, features  # well above silence
    assert 0.05 < features["pause_fraction"] < 0.6, features  # pauses between words and clauses
    assert features["loud_fraction"] > 0.3, features
    assert features["centroid_spread_hz"] > 400, features  # the spectrum moves (phonemes)
    assert features["flatness"] < 0.1, features  # harmonic, not white noise
    seconds = samples.size / RATE
    most = SYLLABIC_SECONDS.get(language, 0.15)
    assert 0.025 * len(text) < seconds < most * len(text), seconds  # plausible for the text


def test_language_defaults_to_the_voices_first_catalog_language() -> None:
    assert espeak.espeak_language(_request(), CATALOG["priya"]) == "hi"
    assert espeak.espeak_language(_request(), CATALOG["lucia"]) == "es"
    assert espeak.espeak_language(_request(), CATALOG["arjun"]) == "en-us"
    assert espeak.espeak_language(_request(language="es"), CATALOG["priya"]) == "es"
    assert espeak.espeak_language(_request(language="auto"), CATALOG["lucia"]) == "es"


def test_the_number_language_is_spoken_when_no_language_is_given() -> None:
    """The API: without ``language``, ``number_pronunciation_language`` is also the synthesis language."""
    assert espeak.espeak_language(_request(number_pronunciation_language="de"), CATALOG["magnus"]) == "de"
    assert (
        espeak.espeak_language(_request(language="auto", number_pronunciation_language="fr"), CATALOG["magnus"])
        == "fr-fr"
    )
    assert (
        espeak.espeak_language(_request(language="hi", number_pronunciation_language="fr"), CATALOG["magnus"]) == "hi"
    )


def test_faster_speed_is_clearly_shorter(engine: espeak.EspeakEngine) -> None:
    normal = engine.synthesize(_request(speed=1.0)).size
    fast = engine.synthesize(_request(speed=2.0)).size
    slow = engine.synthesize(_request(speed=0.5)).size
    assert fast < 0.7 * normal
    assert slow > 1.4 * normal
    assert espeak.espeak_rate(1.0) == 175
    assert espeak.espeak_rate(0.1) == espeak.RATE_MIN_WPM
    assert espeak.espeak_rate(5.0) == espeak.RATE_MAX_WPM


def test_requested_sample_rate(engine: espeak.EspeakEngine) -> None:
    seconds = {}
    for rate in (8000, 16000, 24000, 44100):
        samples = engine.synthesize(_request(sample_rate=rate))
        seconds[rate] = samples.size / rate
        assert _median_pitch_hz(samples, rate) == pytest.approx(
            _median_pitch_hz(engine.synthesize(_request(sample_rate=16000)), 16000), rel=0.1
        )
    assert max(seconds.values()) - min(seconds.values()) < 0.01, seconds
    assert 2.0 < seconds[8000] < 8.0


def test_same_request_same_samples_whatever_came_before(engine: espeak.EspeakEngine) -> None:
    request = _request(voice_id="emily")
    first = engine.synthesize(request)
    engine.synthesize(_request(TEXTS["hi"], voice_id="priya", speed=1.7))
    second = engine.synthesize(request)
    assert np.array_equal(first, second)


def test_concurrent_calls_match_serial_ones(engine: espeak.EspeakEngine) -> None:
    requests = [_request(TEXTS[lang], language=lang) for lang in ("en", "hi", "es", "ta")] * 2
    serial = [engine.synthesize(r) for r in requests]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(engine.synthesize, requests))
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel))


def test_helper_process_is_restarted_after_it_dies(engine: espeak.EspeakEngine) -> None:
    before = engine.synthesize(_request())
    process = espeak._HELPER._process
    assert process is not None
    process.kill()
    process.wait()
    assert np.array_equal(engine.synthesize(_request()), before)


def test_catalog_voices_sound_different(engine: espeak.EspeakEngine) -> None:
    magnus = engine.synthesize(_request(voice_id="magnus"))
    emily = engine.synthesize(_request(voice_id="emily"))
    assert not np.array_equal(magnus[: emily.size], emily[: magnus.size])
    assert _median_pitch_hz(emily, RATE) > 1.4 * _median_pitch_hz(magnus, RATE)
    variants = [espeak.ESPEAK_VARIANTS[v] for v in CATALOG]
    assert len(set(variants)) == len(CATALOG)


def test_auto_falls_back_to_synthetic_without_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(espeak, "espeak_available", lambda: False)
    assert get_engine("auto").name == "synthetic"
    with pytest.raises(ValueError, match=r"batchtts\[speech\]"):
        get_engine("espeak")


def test_auto_falls_back_when_the_module_cannot_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "batchtts.server.espeak", None)
    assert get_engine("auto").name == "synthetic"
    with pytest.raises(ValueError, match=r"batchtts\[speech\]"):
        get_engine("espeak")


@pytest.mark.parametrize("missing", ["espeakng_loader", "soxr"])
def test_unavailable_when_a_dependency_is_missing(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    assert espeak.espeak_available()
    monkeypatch.setitem(sys.modules, missing, None)
    assert not espeak.espeak_available()


def test_auto_and_espeak_pick_espeak_when_installed(engine: espeak.EspeakEngine) -> None:
    assert get_engine("auto").name == "espeak"
    assert get_engine("espeak").name == "espeak"

"""Whisper's languages: codes, English names, and lenient parsing of what callers send.

The table is openai/whisper's ``tokenizer.LANGUAGES`` (the 100 languages multilingual Whisper models know),
with its lowercase English names, plus the aliases from ``tokenizer.TO_LANGUAGE_CODE``.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["LANGUAGES", "is_supported", "language_name", "normalise_language"]

LANGUAGES = MappingProxyType(
    {
        "en": "english",
        "zh": "chinese",
        "de": "german",
        "es": "spanish",
        "ru": "russian",
        "ko": "korean",
        "fr": "french",
        "ja": "japanese",
        "pt": "portuguese",
        "tr": "turkish",
        "pl": "polish",
        "ca": "catalan",
        "nl": "dutch",
        "ar": "arabic",
        "sv": "swedish",
        "it": "italian",
        "id": "indonesian",
        "hi": "hindi",
        "fi": "finnish",
        "vi": "vietnamese",
        "he": "hebrew",
        "uk": "ukrainian",
        "el": "greek",
        "ms": "malay",
        "cs": "czech",
        "ro": "romanian",
        "da": "danish",
        "hu": "hungarian",
        "ta": "tamil",
        "no": "norwegian",
        "th": "thai",
        "ur": "urdu",
        "hr": "croatian",
        "bg": "bulgarian",
        "lt": "lithuanian",
        "la": "latin",
        "mi": "maori",
        "ml": "malayalam",
        "cy": "welsh",
        "sk": "slovak",
        "te": "telugu",
        "fa": "persian",
        "lv": "latvian",
        "bn": "bengali",
        "sr": "serbian",
        "az": "azerbaijani",
        "sl": "slovenian",
        "kn": "kannada",
        "et": "estonian",
        "mk": "macedonian",
        "br": "breton",
        "eu": "basque",
        "is": "icelandic",
        "hy": "armenian",
        "ne": "nepali",
        "mn": "mongolian",
        "bs": "bosnian",
        "kk": "kazakh",
        "sq": "albanian",
        "sw": "swahili",
        "gl": "galician",
        "mr": "marathi",
        "pa": "punjabi",
        "si": "sinhala",
        "km": "khmer",
        "sn": "shona",
        "yo": "yoruba",
        "so": "somali",
        "af": "afrikaans",
        "oc": "occitan",
        "ka": "georgian",
        "be": "belarusian",
        "tg": "tajik",
        "sd": "sindhi",
        "gu": "gujarati",
        "am": "amharic",
        "yi": "yiddish",
        "lo": "lao",
        "uz": "uzbek",
        "fo": "faroese",
        "ht": "haitian creole",
        "ps": "pashto",
        "tk": "turkmen",
        "nn": "nynorsk",
        "mt": "maltese",
        "sa": "sanskrit",
        "lb": "luxembourgish",
        "my": "myanmar",
        "bo": "tibetan",
        "tl": "tagalog",
        "mg": "malagasy",
        "as": "assamese",
        "tt": "tatar",
        "haw": "hawaiian",
        "ln": "lingala",
        "ha": "hausa",
        "ba": "bashkir",
        "jw": "javanese",
        "su": "sundanese",
        "yue": "cantonese",
    }
)
"""Whisper language code -> lowercase English name, in Whisper's token order."""

_ALIASES = {
    "burmese": "my",
    "valencian": "ca",
    "flemish": "nl",
    "haitian": "ht",
    "letzeburgesch": "lb",
    "pushto": "ps",
    "panjabi": "pa",
    "moldavian": "ro",
    "moldovan": "ro",
    "sinhalese": "si",
    "castilian": "es",
    "mandarin": "zh",
}

_BY_NAME = {**{name: code for code, name in LANGUAGES.items()}, **_ALIASES}


def language_name(code: str) -> str:
    """The lowercase English name of a Whisper language code, as OpenAI's ``verbose_json`` reports it.

    Args:
        code: a language code such as ``"en"`` (case-insensitive).

    Returns:
        The name, e.g. ``"english"``; an unknown code comes back unchanged so callers always have something to show.
    """
    return LANGUAGES.get(code.strip().lower(), code)


def is_supported(code: str) -> bool:
    """Whether ``code`` is a Whisper language code (case-insensitive); names are not accepted here."""
    return isinstance(code, str) and code.strip().lower() in LANGUAGES


def normalise_language(value: str | None) -> str | None:
    """Turn what a caller sent as a language into a Whisper code.

    Accepts codes (``"en"``, ``"EN"``), English names (``"English"``), Whisper's aliases (``"Mandarin"``) and
    region-tagged codes (``"en-US"``, ``"pt_BR"``), all case-insensitively.

    Args:
        value: the caller's language, or None.

    Returns:
        The Whisper code, or None when ``value`` is empty, not a string, or not a language Whisper knows.
    """
    if not isinstance(value, str):
        return None
    key = " ".join(value.split()).lower()
    if not key:
        return None
    if key in LANGUAGES:
        return key
    if key in _BY_NAME:
        return _BY_NAME[key]
    # BCP 47 / POSIX locale tags: only the primary subtag names the language.
    primary = key.replace("_", "-").split("-", 1)[0]
    return primary if primary in LANGUAGES else None

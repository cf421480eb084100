"""Translation of non-English player texts (docs/method.md §3.1): pluggable and cached in a file.

The authors translated Italian labels with the DeepL API, giving the *guessed* class name as
context. Here translation is a registry of interchangeable translators chosen by the string
``labels_analyze.translate.method``:

- ``none`` (default): no machine translation;
- ``deepl``: the official ``deepl`` client; the key comes from an environment variable
  (``key_env``, default ``DEEPL_AUTH_KEY``), the guessed class name is sent as ``context``;
- ``dictionary``: a file of manual translations (columns ``text, language, translation`` and
  optionally ``context``), looked up after the same normalisation as the texts.

:func:`translate_texts` resolves every text in this order: a translation provided with the
export (``text_en``), the text itself when already in the target language, the translation
cache (a CSV the pipeline tracks), then the translator. Texts nothing could translate (offline,
no cache entry, not in the dictionary) are kept as they are or dropped (``untranslated``) —
always counted and warned about, never silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd

from inviz.core.errors import InvizError
from inviz.labels.text import normalize

log = logging.getLogger(__name__)

#: Language names seen in exports -> ISO 639-1 code.
LANGUAGE_NAMES: dict[str, str] = {
    "english": "en",
    "inglese": "en",
    "eng": "en",
    "en-us": "en",
    "en-gb": "en",
    "italian": "it",
    "italiano": "it",
    "ita": "it",
    "it-it": "it",
    "german": "de",
    "deutsch": "de",
    "french": "fr",
    "français": "fr",
    "francais": "fr",
    "spanish": "es",
    "español": "es",
    "espanol": "es",
}


def language_code(value: Any, default: str = "en") -> str:
    """Normalise a language name or code (``"Italian"``, ``"IT"``, ``"it-IT"``) to ``"it"``."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or not str(value).strip():
        return default
    v = str(value).strip().lower()
    return LANGUAGE_NAMES.get(v, v.split("-")[0].split("_")[0])


class TranslationError(InvizError, ValueError):
    """A translation file is malformed or the translator is misconfigured."""


@dataclass(frozen=True)
class TranslateConfig:
    """``labels_analyze.translate``: how non-English texts become English.

    method : translator name from :data:`TRANSLATORS` (``none``, ``deepl``, ``dictionary``).
    target_language : language the analysis works in (ISO code).
    use_context : give the guessed class name as context (DeepL's ``context``; the dictionary
        prefers entries whose ``context`` matches).
    key_env : environment variable holding the DeepL key.
    deepl_target : DeepL's target language code.
    untranslated : ``keep`` texts that could not be translated as they are, or ``drop`` them
        (both counted in the metrics).
    """

    method: str = "none"
    target_language: str = "en"
    use_context: bool = True
    key_env: str = "DEEPL_AUTH_KEY"
    deepl_target: str = "EN-US"
    untranslated: Literal["keep", "drop"] = "keep"

    def __post_init__(self) -> None:
        if self.method not in TRANSLATORS:
            raise ValueError(f"method: expected one of {', '.join(TRANSLATORS)}, got {self.method!r}")


class Translator(Protocol):
    """Translate ``texts`` (all in ``source``) into ``target``; ``None`` where not possible."""

    name: str

    def translate(
        self, texts: Sequence[str], source: str, target: str, context: str | None
    ) -> list[str | None]:
        """Translate ``texts``; one translation or ``None`` per text, in order."""
        ...


class NoTranslator:
    """``none``: translates nothing."""

    name = "none"

    def translate(
        self, texts: Sequence[str], source: str, target: str, context: str | None
    ) -> list[str | None]:
        """Return ``None`` for every text."""
        return [None] * len(texts)


DICTIONARY_COLUMNS = ("text", "language", "translation")


def read_dictionary(path: str | Path | None) -> pd.DataFrame:
    """Read a manual-translation file (``text, language, translation[, context]``).

    A missing path gives an empty table; a file without the required columns raises
    :class:`TranslationError` naming it.
    """
    cols = [*DICTIONARY_COLUMNS, "context"]
    if path is None or not Path(path).is_file():
        return pd.DataFrame(columns=cols, dtype=str)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = [c for c in DICTIONARY_COLUMNS if c not in frame.columns]
    if missing:
        raise TranslationError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(DICTIONARY_COLUMNS)}[, context]"
        )
    if "context" not in frame.columns:
        frame["context"] = ""
    return frame[cols]


class DictionaryTranslator:
    """``dictionary``: manual translations; an entry with a matching ``context`` wins."""

    name = "dictionary"

    def __init__(self, table: pd.DataFrame):
        self._map: dict[tuple[str, str, str], str] = {}
        for text, lang, trans, ctx in table[["text", "language", "translation", "context"]].itertuples(
            index=False
        ):
            if str(trans).strip():
                self._map[(normalize(text), language_code(lang), normalize(ctx or ""))] = str(trans)

    def __len__(self) -> int:
        return len(self._map)

    def translate(
        self, texts: Sequence[str], source: str, target: str, context: str | None
    ) -> list[str | None]:
        """Look every text up (normalised) under ``context``, then without context."""
        ctx = normalize(context or "")
        out: list[str | None] = []
        for t in texts:
            key = normalize(t)
            out.append(self._map.get((key, source, ctx)) or self._map.get((key, source, "")))
        return out


class DeepLTranslator:
    """``deepl``: the official DeepL client, one request per (language, context) batch.

    ``client`` is injected in tests; otherwise ``deepl.Translator(os.environ[key_env])``. A missing
    key or a failed request (offline) logs a warning and returns ``None`` for the batch.
    """

    name = "deepl"

    def __init__(self, key_env: str = "DEEPL_AUTH_KEY", target: str = "EN-US", client: Any | None = None):
        self.key_env = key_env
        self.deepl_target = target
        self._client = client
        self._failed = False

    def _get_client(self) -> Any | None:
        if self._client is None and not self._failed:
            key = os.environ.get(self.key_env, "").strip()
            if not key:
                log.warning("deepl: no API key in $%s; texts are left untranslated", self.key_env)
                self._failed = True
                return None
            import deepl

            self._client = deepl.Translator(key)
        return self._client

    def translate(
        self, texts: Sequence[str], source: str, target: str, context: str | None
    ) -> list[str | None]:
        """Send the batch to DeepL; ``None`` for every text without a key or when the request fails."""
        client = self._get_client()
        if client is None or not texts:
            return [None] * len(texts)
        try:
            results = client.translate_text(
                list(texts),
                source_lang=source.upper(),
                target_lang=self.deepl_target,
                context=context or None,
            )
        except Exception as err:  # deepl.DeepLException, connection errors: offline is expected here
            log.warning(
                "deepl: request failed (%s: %s); %d text(s) left untranslated",
                type(err).__name__,
                err,
                len(texts),
            )
            self._failed = True
            self._client = None
            return [None] * len(texts)
        results = results if isinstance(results, list) else [results]
        return [getattr(r, "text", None) for r in results]


#: Translator registry: name -> factory(cfg, dictionary table) -> Translator.
TRANSLATORS: dict[str, Callable[[TranslateConfig, pd.DataFrame], Translator]] = {
    "none": lambda cfg, table: NoTranslator(),
    "dictionary": lambda cfg, table: DictionaryTranslator(table),
    "deepl": lambda cfg, table: DeepLTranslator(cfg.key_env, cfg.deepl_target),
}


def make_translator(cfg: TranslateConfig, dictionary: pd.DataFrame | None = None) -> Translator:
    """Build the translator named by ``cfg.method``."""
    table = dictionary if dictionary is not None else read_dictionary(None)
    return TRANSLATORS[cfg.method](cfg, table)


CACHE_COLUMNS = ["method", "source", "target", "context", "text", "translation"]


class TranslationCache:
    """Translations already obtained, keyed by (method, source, target, context, text).

    Stored as a CSV file (``CACHE_COLUMNS``) the pipeline tracks (a persistent DVC output), so
    a run without network reuses earlier machine translations.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self._data: dict[tuple[str, str, str, str, str], str] = {}
        self.added = 0
        if self.path and self.path.is_file():
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False, encoding="utf-8")
            missing = [c for c in CACHE_COLUMNS if c not in frame.columns]
            if missing:
                raise TranslationError(
                    f"{self.path}: not a translation cache; missing column(s) {', '.join(missing)}"
                )
            for row in frame[CACHE_COLUMNS].itertuples(index=False):
                self._data[tuple(row[:5])] = row[5]  # type: ignore[index]

    def __len__(self) -> int:
        return len(self._data)

    def get(self, method: str, source: str, target: str, context: str, text: str) -> str | None:
        """Return the cached translation, or None."""
        return self._data.get((method, source, target, context, text))

    def put(self, method: str, source: str, target: str, context: str, text: str, translation: str) -> None:
        """Store a translation (:attr:`added` counts new or changed entries)."""
        key = (method, source, target, context, text)
        if self._data.get(key) != translation:
            self._data[key] = translation
            self.added += 1

    def frame(self) -> pd.DataFrame:
        """Return the cache as a table with :data:`CACHE_COLUMNS`, sorted by key."""
        rows = [(*k, v) for k, v in sorted(self._data.items())]
        return pd.DataFrame(rows, columns=CACHE_COLUMNS)

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the cache CSV to ``path`` or its own file; None for an in-memory cache."""
        from inviz.core.io import write_csv

        target = Path(path) if path else self.path
        if target is None:
            return None
        return write_csv(target, self.frame())


@dataclass(frozen=True)
class TranslationResult:
    """Output of :func:`translate_texts`.

    texts : translated texts, one per input (the input itself where kept untranslated).
    status : per input — ``target`` (already in the target language), ``provided`` (the export's
        translation), ``cached``, ``translated``, ``untranslated``.
    counts : number of inputs per status.
    """

    texts: list[str]
    status: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def translate_texts(
    texts: Sequence[str],
    languages: Sequence[str],
    contexts: Sequence[str | None],
    cfg: TranslateConfig,
    translator: Translator,
    cache: TranslationCache | None = None,
    provided: Sequence[str | None] | None = None,
) -> TranslationResult:
    """Translate every text not in ``cfg.target_language``.

    Parameters
    ----------
    texts, languages, contexts : one entry per text (language as ISO code; context = the
        guessed class name, used when ``cfg.use_context``).
    translator : from :func:`make_translator`. cache : looked up first, filled with new results.
    provided : translations shipped with the export (``text_en``); empty entries are ignored.
    """
    n = len(texts)
    out: list[str] = list(texts)
    status = ["target"] * n
    pending: dict[tuple[str, str], list[int]] = {}
    for i, (t, lang, ctx) in enumerate(zip(texts, languages, contexts, strict=False)):
        given = provided[i] if provided is not None else None
        if given is not None and not (isinstance(given, float) and pd.isna(given)) and str(given).strip():
            if lang != cfg.target_language:
                out[i], status[i] = str(given), "provided"
                continue
        if lang == cfg.target_language:
            continue
        context = (ctx or "") if cfg.use_context else ""
        hit = cache.get(translator.name, lang, cfg.target_language, context, t) if cache else None
        if hit is not None:
            out[i], status[i] = hit, "cached"
            continue
        pending.setdefault((lang, context), []).append(i)
    for (lang, context), idx in sorted(pending.items()):
        distinct = sorted({texts[i] for i in idx})
        result = dict(
            zip(
                distinct,
                translator.translate(distinct, lang, cfg.target_language, context or None),
                strict=False,
            )
        )
        for i in idx:
            tr = result.get(texts[i])
            if tr is None or not str(tr).strip():
                status[i] = "untranslated"
            else:
                out[i], status[i] = str(tr), "translated"
                if cache is not None and translator.name != "dictionary":
                    cache.put(translator.name, lang, cfg.target_language, context, texts[i], str(tr))
    counts = {s: status.count(s) for s in ("target", "provided", "cached", "translated", "untranslated")}
    if counts["untranslated"]:
        log.warning(
            "%d text(s) in another language could not be translated (method %r, no cache entry): %s",
            counts["untranslated"],
            translator.name,
            "kept as typed" if cfg.untranslated == "keep" else "dropped",
        )
    return TranslationResult(out, status, counts)

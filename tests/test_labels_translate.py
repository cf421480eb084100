"""Translation registry, file cache, DeepL client use, offline behaviour (docs/method.md §3.1)."""

import logging

import pandas as pd
import pytest

from inviz.core.config import ParamsError, from_dict
from inviz.labels.translate import (
    TRANSLATORS,
    DeepLTranslator,
    TranslateConfig,
    TranslationCache,
    TranslationError,
    language_code,
    make_translator,
    read_dictionary,
    translate_texts,
)

DICT = pd.DataFrame(
    {
        "text": ["ruota", "strisce", "coda"],
        "language": ["it", "Italian", "it"],
        "translation": ["wheel", "stripes", "tail"],
        "context": ["", "", "kite"],
    }
)


class FakeResult:
    def __init__(self, text):
        self.text = text


class FakeDeepL:
    """Stands in for deepl.Translator: records calls, 'translates' by upper-casing."""

    def __init__(self, fail=False):
        self.calls = []
        self.fail = fail

    def translate_text(self, texts, *, source_lang=None, target_lang, context=None):
        if self.fail:
            raise ConnectionError("offline")
        self.calls.append((tuple(texts), source_lang, target_lang, context))
        return [FakeResult(t.upper()) for t in texts]


@pytest.mark.parametrize("name", sorted(TRANSLATORS))
def test_every_registered_translator_handles_target_language_and_empty_input(name):
    cfg = TranslateConfig(method=name)
    tr = make_translator(cfg, DICT)
    assert tr.name == name
    res = translate_texts(["wheel", "ruota"], ["en", "it"], ["bicycle", "bicycle"], cfg, tr)
    assert res.texts[0] == "wheel" and res.status[0] == "target"
    assert res.status[1] in {"translated", "untranslated"}
    assert translate_texts([], [], [], cfg, tr).texts == []


def test_unknown_method_is_a_params_error():
    with pytest.raises(ParamsError, match="method"):
        from_dict(TranslateConfig, {"method": "google"}, "labels_analyze.translate")


def test_language_codes():
    assert [language_code(v) for v in ("Italian", "IT", "it-IT", "english", None, "", "fr")] == [
        "it",
        "it",
        "it",
        "en",
        "en",
        "en",
        "fr",
    ]
    assert language_code(None, default="it") == "it"


def test_dictionary_translator_context_and_normalisation():
    cfg = TranslateConfig(method="dictionary")
    tr = make_translator(cfg, DICT)
    res = translate_texts(
        ["Ruota ", "coda", "coda", "sconosciuto"], ["it"] * 4, ["bicycle", "kite", "castle", "kite"], cfg, tr
    )
    assert res.texts[:2] == ["wheel", "tail"]
    assert res.status == [
        "translated",
        "translated",
        "untranslated",
        "untranslated",
    ]  # 'coda' only for 'kite'
    assert res.texts[3] == "sconosciuto"  # kept as typed
    assert res.counts["untranslated"] == 2


def test_deepl_sends_class_name_as_context_and_fills_the_cache(tmp_path):
    cfg = TranslateConfig(method="deepl")
    client = FakeDeepL()
    tr = DeepLTranslator(client=client)
    cache = TranslationCache(tmp_path / "cache.csv")
    res = translate_texts(
        ["ruota", "ruota", "coda"], ["it", "it", "it"], ["bicycle", "bicycle", "kite"], cfg, tr, cache
    )
    assert res.texts == ["RUOTA", "RUOTA", "CODA"]
    assert sorted(client.calls) == [
        (("coda",), "IT", "EN-US", "kite"),
        (("ruota",), "IT", "EN-US", "bicycle"),
    ]
    cache.save()
    # a later run offline: answered from the cache file, no request
    offline = DeepLTranslator(client=FakeDeepL(fail=True))
    again = translate_texts(
        ["ruota", "coda"],
        ["it", "it"],
        ["bicycle", "kite"],
        cfg,
        offline,
        TranslationCache(tmp_path / "cache.csv"),
    )
    assert again.texts == ["RUOTA", "CODA"] and again.status == ["cached", "cached"]


def test_deepl_offline_or_without_key_warns_and_counts(monkeypatch, caplog):
    cfg = TranslateConfig(method="deepl", key_env="INVIZ_TEST_NO_SUCH_KEY")
    monkeypatch.delenv("INVIZ_TEST_NO_SUCH_KEY", raising=False)
    with caplog.at_level(logging.WARNING):
        res = translate_texts(["ruota"], ["it"], ["bicycle"], cfg, make_translator(cfg))
    assert res.status == ["untranslated"] and res.counts["untranslated"] == 1
    assert "no API key" in caplog.text and "could not be translated" in caplog.text
    res = translate_texts(["ruota"], ["it"], ["bicycle"], cfg, DeepLTranslator(client=FakeDeepL(fail=True)))
    assert res.status == ["untranslated"]


def test_context_can_be_switched_off():
    cfg = TranslateConfig(method="deepl", use_context=False)
    client = FakeDeepL()
    translate_texts(["ruota"], ["it"], ["bicycle"], cfg, DeepLTranslator(client=client))
    assert client.calls[0][3] is None


def test_translation_provided_by_the_export_wins():
    cfg = TranslateConfig(method="none")
    res = translate_texts(
        ["ruota", "wheel"],
        ["it", "en"],
        [None, None],
        cfg,
        make_translator(cfg),
        provided=["wheel (provided)", "x"],
    )
    assert res.texts == ["wheel (provided)", "wheel"] and res.status == ["provided", "target"]


def test_dictionary_file_validation(tmp_path):
    assert read_dictionary(None).empty
    bad = tmp_path / "t.csv"
    bad.write_text("text,lang,translation\nruota,it,wheel\n", encoding="utf-8")
    with pytest.raises(TranslationError, match="missing column"):
        read_dictionary(bad)
    ok = tmp_path / "ok.csv"
    ok.write_text("text,language,translation\nruota,it,wheel\n", encoding="utf-8")
    assert read_dictionary(ok)["context"].tolist() == [""]


def test_cache_file_round_trip_and_validation(tmp_path):
    c = TranslationCache(tmp_path / "c.csv")
    c.put("deepl", "it", "en", "kite", "coda", "tail")
    c.save()
    again = TranslationCache(tmp_path / "c.csv")
    assert again.get("deepl", "it", "en", "kite", "coda") == "tail" and len(again) == 1 and again.added == 0
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(TranslationError, match="not a translation cache"):
        TranslationCache(tmp_path / "bad.csv")

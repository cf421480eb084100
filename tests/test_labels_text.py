"""Text cleaning and class-name removal (docs/method.md §3.2)."""

import pytest

from inviz.labels.text import TextConfig, clean_text, name_aliases, normalize, remove_class_names, words


@pytest.mark.parametrize(
    "text, names, expected",
    [
        ("The dog's ears!!", ["English springer", "Dog"], "the ears"),
        ("ear of the dog", ["Dog"], "ear of the"),
        ("dog paws", ["Dog"], "paws"),
        ("Dogs' tails", ["dog"], "tails"),
        ("English Springer\u2019s tail", ["English springer", "Dog"], "tail"),
        ("english_springer head", ["English springer"], "head"),
        ("churches windows", ["church"], "windows"),
        ("garbage-truck wheels", ["garbage truck"], "wheels"),
        ("GARBAGE TRUCK", ["garbage truck"], ""),
        ("hotdog bun", ["dog"], "hotdog bun"),  # only whole words
        ("dogma", ["dog"], "dogma"),
        ("the fish eye", ["tench", "Fish"], "the eye"),
    ],
)
def test_class_name_and_possessive_removal(text, names, expected):
    assert clean_text(text, names) == expected


def test_punctuation_whitespace_and_possessive_of_other_words():
    assert clean_text("  Wheel's   rim -- red!!! ", []) == "wheel rim red"
    assert clean_text("zig-zag line.", []) == "zig-zag line"
    assert clean_text("'stripes'", []) == "stripes"
    assert clean_text("(spokes), tyre; rim?", []) == "spokes tyre rim"


def test_switches():
    assert clean_text("Dog Ears", ["dog"], TextConfig(lowercase=False)) == "Ears"
    assert clean_text("dog ears", ["dog"], TextConfig(remove_class_name=False)) == "dog ears"
    assert clean_text("truck wheels", ["garbage truck"]) == "truck wheels"
    assert clean_text("truck wheels", ["garbage truck"], TextConfig(remove_name_words=True)) == "wheels"
    assert clean_text("wheel's rim", [], TextConfig(strip_possessive=False)) == "wheel's rim"


def test_helpers():
    assert normalize("\u201cFOO\u201d\u2014bar_baz") == '"foo"-bar baz'
    assert name_aliases(["Dog", " dog ", None, ""]) == ("dog",)
    assert set(name_aliases(["garbage truck"], name_words=True)) == {"garbage truck", "garbage", "truck"}
    assert remove_class_names("a dog", []) == "a dog"
    assert words("zig-zag line 3 x") == ["zig-zag", "line", "x"]

"""The suite's own scheduling: the longest files are named correctly and `make test` honours their order."""

from __future__ import annotations

import re

from conftest import LONGEST_FIRST, ROOT


def test_longest_first_names_existing_test_files():
    missing = [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()]
    assert not missing, f"tests/conftest.py LONGEST_FIRST names files that do not exist: {missing}"
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


def test_make_test_keeps_the_collection_order(request):
    makefile = (ROOT / "Makefile").read_text()
    for target in ("test", "test-fast"):
        recipe = re.search(rf"^{target}: install\n\t(.+)$", makefile, re.M)
        assert recipe, f"Makefile: no '{target}: install' recipe"
        assert "--dist loadfile --no-loadscope-reorder" in recipe.group(1), recipe.group(1)
    # this session's items: the files of LONGEST_FIRST come first, in that order
    names = list(dict.fromkeys(item.path.name for item in request.session.items))
    ranked = [name for name in names if name in LONGEST_FIRST]
    assert names[: len(ranked)] == ranked == sorted(ranked, key=LONGEST_FIRST.index)

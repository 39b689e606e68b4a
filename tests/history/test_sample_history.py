"""The sample clip replayed into a store and found again with `mmstream search` (real media,
real models, the real CLI in a subprocess)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_CLIP, SAMPLE_SENTENCES

Cli = Callable[..., subprocess.CompletedProcess[str]]
#: per sentence: a word of it, and a stemmed variant that is not in it
WORDS = {SAMPLE_SENTENCES[0]: ("kitchen", "cameras"), SAMPLE_SENTENCES[1]: ("happy", "todays"),
         SAMPLE_SENTENCES[2]: ("coffee", "tables")}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import os
    import sys

    from tests.conftest import REPO

    path = tmp_path_factory.mktemp("replayed") / "sample.history.db"
    done = subprocess.run([sys.executable, "-m", "mmstream", "replay", str(SAMPLE_CLIP),
                           "--out", str(path.with_suffix(".jsonl")), "--history", str(path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    yield path


def found(cli: Cli, store: Path, *args: str) -> list[dict[str, object]]:
    done = cli("search", *args, "--json", "--history", str(store))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("sentence", SAMPLE_SENTENCES)
def test_each_sentence_is_found_by_a_word_and_a_stemmed_variant(
        cli: Cli, store: Path, sentence: str) -> None:
    for word in WORDS[sentence]:
        moments = found(cli, store, word)
        assert [m["text"] for m in moments] == [sentence], word
        [moment] = moments
        assert moment["tags"] == ["person"] and moment["emotion"] == "happy"
        assert moment["recording"] == str(SAMPLE_CLIP.resolve())
        assert 0 <= moment["offset_s"] < moment["end_offset_s"] <= 9  # type: ignore[operator]


@pytest.mark.slow
def test_found_by_tag_emotion_and_time(cli: Cli, store: Path) -> None:
    for filters in (["--tag", "person"], ["--emotion", "happy"], ["--since", "1h"]):
        texts = " ".join(str(m["text"]) for m in found(cli, store, *filters))
        assert all(sentence in texts for sentence in SAMPLE_SENTENCES), filters
    both = found(cli, store, "coffee", "--tag", "person", "--emotion", "happy", "--since", "1d")
    assert [m["text"] for m in both] == [SAMPLE_SENTENCES[-1]]
    assert found(cli, store, "coffee", "--emotion", "angry") == []
    assert found(cli, store, "coffee", "--until", "2000-01-01") == []


@pytest.mark.slow
def test_the_text_output_reads_as_moments(cli: Cli, store: Path) -> None:
    done = cli("search", "coffee", "--history", str(store))
    assert done.returncode == 0
    line = done.stdout.splitlines()[-1]
    assert f"'{SAMPLE_SENTENCES[-1]}' — person · happy" in line


def test_bad_queries_get_one_line(cli: Cli, store_or_empty: Path) -> None:
    for args, expected in ((["x", "--since", "last week"], "30m, 2h"),
                           (['"*"'], "give words"),
                           (["--type", "video"], "transcript, scene")):
        done = cli("search", *args, "--history", str(store_or_empty))
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr
    for text in ('"package', "NEAR(a b)", "(door", "door -cat", "x*", "a:b"):
        done = cli("search", text, "--history", str(store_or_empty))
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


@pytest.fixture
def store_or_empty(tmp_path: Path) -> Path:
    from tests.history.helpers import written_store

    written_store(tmp_path / "empty.db", [])
    return tmp_path / "empty.db"


def test_replay_history_in_a_read_only_folder_fails_at_start(
        cli: Cli, read_only_folder: Path) -> None:
    done = cli("replay", str(SAMPLE_CLIP), "--history", str(read_only_folder / "h.db"))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: --history {read_only_folder / 'h.db'}: cannot "
                                   f"write in {read_only_folder}")

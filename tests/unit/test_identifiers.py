from __future__ import annotations

import pytest

from topics.identifiers import (
    is_valid_id_number,
    is_valid_uscc,
    person_subject_id,
    uscc_check_char,
)


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91320106MA1XY31255"])
def test_design_examples_are_valid_usccs(code: str) -> None:
    assert is_valid_uscc(code)


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y44",  # wrong check character
        "91320106MA1XY3125",  # 17 characters
        "91320106MA1XY3125I",  # I is not in the alphabet
        "91320106MA1XY3125O",
        "",
    ],
)
def test_bad_usccs_are_refused(code: str) -> None:
    assert not is_valid_uscc(code)


def test_check_character_31_becomes_0() -> None:
    # search a prefix whose weighted sum is 0 mod 31: its check value is 31, written as '0'
    prefix = "0" * 17
    assert uscc_check_char(prefix) == "0"
    assert is_valid_uscc(prefix + "0")


def test_id_number_check() -> None:
    assert is_valid_id_number("11010519491231002X")
    assert is_valid_id_number("11010519491231002x")
    assert not is_valid_id_number("110105194912310021")
    assert not is_valid_id_number("1101051949123100")


def test_person_subject_id_is_salted_hash_and_never_clear() -> None:
    sid = person_subject_id("11010519491231002X", "salt-a")
    assert sid.startswith("P") and len(sid) == 65 and "11010519491231002X" not in sid
    assert sid != person_subject_id("11010519491231002X", "salt-b")
    with pytest.raises(ValueError):
        person_subject_id("110105194912310021", "salt-a")

